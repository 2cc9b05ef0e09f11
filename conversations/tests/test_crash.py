"""A server killed while it streams an answer into a conversation: after a restart the thread is whole.

A live daphne serves the real SmolLM2; a client streams an answer into a conversation and the
server is killed with SIGKILL once some tokens have arrived. An exchange (the user's turn and the
answer) is written in one transaction when the answer ends, so the killed one left nothing: the
conversation holds exactly what it held before the question, nothing doubled, and goes on.
"""

from __future__ import annotations

import json

import httpx
import psutil
import pytest
from django.conf import settings

from llmsite.testing import LiveServer, is_postgres, start_live_server

pytestmark = [pytest.mark.crash, pytest.mark.live_server, pytest.mark.real_model]

PASSWORD = "a long pass phrase"
DEADLINE = 60  # seconds to wait for something that happens (a process gone), on a busy machine


def signed_in(server: LiveServer, username: str, *, register: bool = False) -> httpx.Client:
    http = httpx.Client(base_url=server.url, timeout=120)
    credentials = {"username": username, "password": PASSWORD}
    if register:
        http.post("/api/v1/auth/register", json=credentials).raise_for_status()
    token = http.post("/api/v1/auth/token", json=credentials).raise_for_status().json()["access"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def ask(http: httpx.Client, conversation: int, prompt: str) -> dict:
    body = {"prompt": prompt, "conversation": conversation, "max_new_tokens": 8, "temperature": 0}
    response = http.post("/api/v1/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def stream_until_killed(http: httpx.Client, server: LiveServer, conversation: int, prompt: str) -> str:
    """Stream an answer and SIGKILL the server after its third delta; returns the text that arrived."""
    body = {"prompt": prompt, "conversation": conversation, "max_new_tokens": 200, "temperature": 0, "stream": True}
    deltas: list[str] = []
    with pytest.raises(httpx.TransportError), http.stream("POST", "/api/v1/predict", json=body) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            assert not line.startswith("event: "), f"the answer ended before the kill: {line}"
            if line.startswith("data: "):
                deltas.append(json.loads(line.removeprefix("data: "))["delta"])
                if len(deltas) == 3:
                    server.process.kill()
    return "".join(deltas)


def messages_on_disk(server: LiveServer, conversation: int) -> list[tuple[str, str]]:
    if not is_postgres(server.env.get("DATABASE_URL", "")):
        assert server.query("PRAGMA integrity_check") == [("ok",)]
    query = "SELECT role, content FROM inference_message WHERE conversation_id = %s ORDER BY id"
    return [tuple(row) for row in server.query(query, (conversation,))]


def test_a_server_killed_mid_answer_leaves_the_conversation_as_it_was_and_it_goes_on(tmp_path):
    data_dir = tmp_path / "data"
    extra = {"MODELS_DIR": str(settings.MODELS_DIR), "EMBEDDINGS_LOAD_AT_START": "never"}
    server = start_live_server(data_dir, **extra)
    try:
        server.wait_ready("/readyz")
        http = signed_in(server, "ada", register=True)
        conversation = http.post("/api/v1/conversations", json={}).raise_for_status().json()["id"]
        first = ask(http, conversation, "Say hello.")

        runners = psutil.Process(server.process.pid).children(recursive=True)
        partial = stream_until_killed(http, server, conversation, "Write a long story about a dragon.")
        server.process.wait(timeout=DEADLINE)
        assert partial, "some tokens arrived before the kill"
        # The model runners follow their server (they would hold the memory of a model nobody serves).
        _gone, alive = psutil.wait_procs(runners, timeout=DEADLINE)
        assert not alive, f"runner processes outlived their server: {alive}"
    finally:
        server.stop()

    # On disk after the crash: the first exchange, whole, and nothing of the killed one.
    assert messages_on_disk(server, conversation) == [
        ("user", "Say hello."),
        ("assistant", first["text"]),
    ]

    restarted = LiveServer(server.env)
    try:
        restarted.wait_ready("/readyz")
        http = signed_in(restarted, "ada")
        second = ask(http, conversation, "And goodbye?")
        thread = http.get(f"/api/v1/conversations/{conversation}").raise_for_status().json()
    finally:
        restarted.stop()
    assert [(m["role"], m["content"]) for m in thread["messages"]] == [
        ("user", "Say hello."),
        ("assistant", first["text"]),
        ("user", "And goodbye?"),
        ("assistant", second["text"]),
    ]
    assert all(m["finish_reason"] in ("stop", "length") for m in thread["messages"] if m["role"] == "assistant")
