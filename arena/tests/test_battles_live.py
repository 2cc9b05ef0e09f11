"""A battle through a live daphne: both answers stream at the same time, and a client gone cancels both.

The site serves a tiny local model (tiny-a, in its runner process) and a remote one
(`openai/gpt-held`) on a stand-in OpenAI-compatible upstream in this process. The stand-in sends
the remote answer's first words, then holds the rest until this test releases it, and the test
releases it only once the local side has finished. So a battle whose sides ran one after the other
could never end with the remote side first: with the remote model on either side, the local answer
must be done while the remote one is still open. No timing is measured.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from arena.tests.conftest import build_tiny_models
from inference.tests.fake_upstream import FakeUpstream, openai_sse, sse_reply
from llmsite.testing import start_live_server

pytestmark = [pytest.mark.live_server, pytest.mark.django_db]

REMOTE = "openai/gpt-held"
DEADLINE = 120  # seconds: a bound, never a measure (a first answer loads the local model's runner)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory, upstream):
    models = build_tiny_models(tmp_path_factory.mktemp("arena-live-models"), ("tiny-a",))
    server = start_live_server(
        tmp_path_factory.mktemp("arena-site"),
        MODELS_DIR=str(models),
        LLM_PROVIDER="hf",
        LLM_MODEL="tiny-a",
        DEVICE="cpu",
        OPENAI_BASE_URL=f"{upstream.url}/v1",
        OPENAI_API_KEY="",
        OPENAI_API_TYPE="openai",
        OPENAI_MODEL="gpt-held",
        ANTHROPIC_API_KEY="",
        LLM_FALLBACKS="",
        LLM_REMOTE_MAX_RETRIES="0",
        LLM_REMOTE_READ_TIMEOUT=str(DEADLINE),
        EMBEDDINGS_LOAD_AT_START="never",
    )
    server.api_key = server.create_api_key()
    yield server
    server.stop()


def held_reply(hold: threading.Event):
    """The remote answer: its role chunk and first words at once, the rest once `hold` is set."""
    return sse_reply(openai_sse(["Held ", "remote ", "answer"]), pause_after=2, pause=DEADLINE, hold=hold)


def events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """(event, data) of each SSE frame as it arrives."""
    event = "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))
            event = "message"


def battle_stream(site, models: list[str], prompt: str):
    return httpx.stream(
        "POST",
        f"{site.url}/api/v1/arena/battles",
        json={"prompt": prompt, "models": models, "max_tokens": 8},
        headers={"Authorization": f"Bearer {site.api_key}", "Accept": "text/event-stream"},
        timeout=DEADLINE,
    )


@pytest.mark.parametrize("remote_side", ["a", "b"])
def test_both_sides_stream_at_the_same_time(site, upstream, remote_side):
    hold = threading.Event()
    upstream.script("POST", "/v1/chat/completions", held_reply(hold))
    models = [REMOTE, "tiny-a"] if remote_side == "a" else ["tiny-a", REMOTE]
    local_side = "b" if remote_side == "a" else "a"
    seen: list[tuple[str, dict]] = []
    try:
        # A prompt of its own: a deterministic request seen before would be answered from the cache.
        with battle_stream(site, models, prompt=f"Say something, {remote_side}.") as response:
            assert response.status_code == 200, response.read()
            for event, data in events(response):
                seen.append((event, data))
                if event == "done" and data["side"] == local_side:
                    hold.set()  # the local answer ended while the remote one was held open
    finally:
        hold.set()
    assert seen[0][0] == "battle"
    order = [(event, data["side"]) for event, data in seen[1:]]
    # Both answers streamed, and the local one ended before the remote one, which had started.
    assert order.index(("done", local_side)) < order.index(("done", remote_side))
    assert ("token", local_side) in order
    first_remote = order.index(("token", remote_side))
    assert first_remote < order.index(("done", remote_side))
    remote_text = "".join(d["text"] for e, d in seen if e == "token" and d["side"] == remote_side)
    assert remote_text == "Held remote answer"
    assert not any(e == "error" for e, _ in seen)

    # The row holds what streamed; the vote reveals which model was which.
    battle_id = seen[0][1]["id"]
    headers = {"Authorization": f"Bearer {site.api_key}"}
    shown = httpx.get(f"{site.url}/api/v1/arena/battles/{battle_id}", headers=headers).json()
    assert shown["finished"] and shown["model_a"] is None
    assert shown[remote_side]["text"] == remote_text
    voted = httpx.post(f"{site.url}/api/v1/arena/battles/{battle_id}/vote", json={"vote": "tie"}, headers=headers)
    assert voted.status_code == 200
    assert [voted.json()["model_a"], voted.json()["model_b"]] == models


def test_a_client_gone_cancels_both_answers(site, upstream):
    hold = threading.Event()
    upstream.script("POST", "/v1/chat/completions", held_reply(hold))
    with battle_stream(site, [REMOTE, "tiny-a"], prompt="Say something else.") as response:
        stream = events(response)
        _, battle = next(stream)
        seen = []
        for event, data in stream:
            seen.append((event, data))
            if event == "token" and data["side"] == "a":
                break  # the remote answer has started: leave in the middle of it
    headers = {"Authorization": f"Bearer {site.api_key}"}
    deadline = time.monotonic() + DEADLINE
    shown = {}
    while time.monotonic() < deadline:
        shown = httpx.get(f"{site.url}/api/v1/arena/battles/{battle['id']}", headers=headers).json()
        if shown["finished"]:
            break
        time.sleep(0.2)
    hold.set()
    assert shown["finished"], shown
    assert shown["a"]["finish_reason"] == "cancelled" and shown["a"]["text"] == "Held ", (seen, shown)
    # The site closed its request to the upstream (the stand-in's next write fails).
    assert upstream.disconnected.wait(DEADLINE)
