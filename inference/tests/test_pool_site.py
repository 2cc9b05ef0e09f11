"""The model pool through a live daphne: what clients of both API families see.

The site serves two different tiny models (tiny-a the default, tiny-b) from runner processes and
a remote model `openai/gpt-pool` on a stand-in OpenAI-compatible upstream in this process; a
failing upstream falls back to tiny-a (LLM_FALLBACKS). Each answer is compared with what its
model answers alone, in this process; records are read from the live site's own database file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import psutil
import pytest

from inference.providers.base import GenerationRequest, Message, SamplingParams
from inference.tests.fake_upstream import FakeUpstream, Reply, closed_port_url, json_reply, openai_sse, sse_reply
from llmsite.testing import ROOT, LiveServer, start_live_server

pytestmark = [pytest.mark.live_server, pytest.mark.django_db]

REMOTE = "openai/gpt-pool"
PASSWORD = "a long pass phrase"
READ_TIMEOUT = 2  # seconds the site waits for a silent upstream before its fallback answers
# Greedy, both random tiny models answer newlines alone; seeded sampling tells them apart, and repeats.
SAMPLING = {"temperature": 1.0, "seed": 7}
TOKENS = 8
DEADLINE = 30


def site_env(tiny_models_dir: Path, upstream_url: str) -> dict[str, str]:
    return {
        "MODELS_DIR": str(tiny_models_dir),
        "LLM_PROVIDER": "hf",
        "LLM_MODEL": "tiny-a",
        "DEVICE": "cpu",
        "OPENAI_BASE_URL": f"{upstream_url}/v1",
        "OPENAI_API_KEY": "",
        "OPENAI_API_TYPE": "openai",
        "OPENAI_MODEL": "gpt-pool",
        "ANTHROPIC_API_KEY": "",
        "LLM_FALLBACKS": f"{REMOTE}=tiny-a",
        "LLM_KEEP_ALIVE": "5m",
        "LLM_REMOTE_MAX_RETRIES": "0",
        "LLM_REMOTE_READ_TIMEOUT": str(READ_TIMEOUT),
        "EMBEDDINGS_LOAD_AT_START": "never",  # nothing here embeds: the CPUs go to the models
    }


class RefreshingBearer(httpx.Auth):
    """A login's access token, refreshed when it expires: staff operations take a login, never an API key."""

    def __init__(self, base_url: str, tokens: dict[str, str]):
        self.base_url, self.tokens = base_url, tokens

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = f"Bearer {self.tokens['access']}"
        response = yield request
        if response.status_code == 401:
            refreshed = httpx.post(
                f"{self.base_url}/api/v1/auth/token/refresh", json={"refresh": self.tokens["refresh"]}
            )
            self.tokens = refreshed.raise_for_status().json()
            request.headers["Authorization"] = f"Bearer {self.tokens['access']}"
            yield request


def login(server: LiveServer, username: str, *, staff: bool = False) -> dict[str, str]:
    """The access and refresh tokens of a new user (a superuser with `staff`)."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        credentials = {"username": username, "password": PASSWORD}
        if staff:
            env = {**server.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
            command = ["manage.py", "createsuperuser", "--noinput", "--username", username, "--email", "s@example.com"]
            subprocess.run([sys.executable, *command], cwd=ROOT, env=env, check=True, capture_output=True)
        else:
            http.post("/api/v1/auth/register", json=credentials).raise_for_status()
        return http.post("/api/v1/auth/token", json=credentials).raise_for_status().json()


def api_key(server: LiveServer, username: str) -> str:
    """A personal API key of a new user."""
    access = login(server, username)["access"]
    with httpx.Client(base_url=server.url, timeout=60) as http:
        created = http.post("/api/v1/auth/keys", json={"name": "pool"}, headers={"Authorization": f"Bearer {access}"})
        return created.raise_for_status().json()["key"]


def prepared(server: LiveServer, data_dir: Path, env: dict[str, str]) -> LiveServer:
    """The server with what the tests use: its database file, a user's and a staff member's HTTP clients, the SDK."""
    server.api_key = api_key(server, "ada")
    server.http = httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {server.api_key}"})
    staff = RefreshingBearer(server.url, login(server, "sam", staff=True))
    server.staff = httpx.Client(base_url=server.url, timeout=60, auth=staff)
    server.sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0, timeout=60)
    return server


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_models_dir, upstream):
    data_dir = tmp_path_factory.mktemp("pool-site")
    env = site_env(tiny_models_dir, upstream.url)
    server = start_live_server(data_dir, **env)
    try:
        yield prepared(server, data_dir, env)
    finally:
        server.stop()
        for client in (getattr(server, "http", None), getattr(server, "staff", None)):
            if client is not None:
                client.close()


def messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def alone(provider, prompt: str) -> str:
    """What `provider` answers to `prompt` with nothing else around (same sampling as the requests)."""
    sampling = SamplingParams(max_new_tokens=TOKENS, **SAMPLING)
    return provider.generate(GenerationRequest(messages=(Message("user", prompt),), sampling=sampling)).text


def predict(site, prompt: str, **fields) -> httpx.Response:
    return site.http.post("/api/v1/predict", json={"prompt": prompt, "max_new_tokens": TOKENS, **SAMPLING, **fields})


def record(site, completion_id: str) -> dict:
    """The usage record of a completion, read from the live site's database file."""
    columns = ("provider", "model", "status", "requested_model", "fallback_reason")
    rows = site.query(
        "SELECT provider, model, status, requested_model, fallback_reason FROM inference_inferencerecord "
        "WHERE request_id = %s",
        (completion_id.removeprefix("cmpl-"),),
    )
    assert rows, f"no record of {completion_id}"
    return dict(zip(columns, rows[0], strict=True))


def pool(site) -> dict[str, dict]:
    response = site.http.get("/api/v1/models")
    response.raise_for_status()
    return {row["id"]: row for row in response.json()["data"]}


def runner_pids(site, model: str) -> set[int]:
    """The live runner processes the site started for `model`."""
    pids = set()
    for child in psutil.Process(site.process.pid).children(recursive=True):
        try:
            command, status = child.cmdline(), child.status()
        except psutil.NoSuchProcess:
            continue
        if status == psutil.STATUS_ZOMBIE or "inference.runners.server" not in command:
            continue
        if json.loads(command[command.index("--options") + 1])["model"] == model:
            pids.add(child.pid)
    return pids


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# --- (a) three models at once, each answering as itself ------------------------------------------
def test_the_openai_sdk_reaches_three_models_at_once_and_each_answers_as_itself(
    site, upstream, tiny_provider, tiny_b_provider
):
    prompt = "Name three colours."
    expected = {"tiny-a": alone(tiny_provider, prompt), "tiny-b": alone(tiny_b_provider, prompt), REMOTE: "Teal."}
    assert expected["tiny-a"] != expected["tiny-b"]  # else this test could not tell them apart
    upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Te", "al."], usage=(6, 2))))
    start = threading.Barrier(len(expected))

    def ask(model: str):
        start.wait(DEADLINE)
        return site.sdk.chat.completions.with_raw_response.create(
            model=model, messages=messages(prompt), max_tokens=TOKENS, **SAMPLING
        )

    with ThreadPoolExecutor(len(expected)) as threads:
        raw = dict(zip(expected, threads.map(ask, expected), strict=True))
    for model, response in raw.items():
        completion = response.parse()
        assert completion.model == model
        assert completion.choices[0].message.content == expected[model], model
        assert response.headers["x-cache"] == "MISS"  # each answered now, not from the cache
    [sent] = [
        seen for seen in upstream.requests_to("/v1/chat/completions") if seen.body["messages"][-1]["content"] == prompt
    ]
    assert sent.body["model"] == "gpt-pool"


# --- (b) unknown models ----------------------------------------------------------------------------
def test_an_unknown_model_is_a_404_model_not_found_in_both_api_families(site):
    for body in ({"prompt": "Hi", "model": "tiny-z"}, {"prompt": "Hi", "model": "tiny-z", "stream": True}):
        response = site.http.post("/api/v1/predict", json=body)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "model_not_found"
        assert response.json()["error"]["field"] == "model"
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as missing:
            site.sdk.chat.completions.create(model="tiny-z", messages=messages("Hi"), stream=stream)
        assert missing.value.body["code"] == "model_not_found"
        assert missing.value.body["param"] == "model"


# --- (c) fallbacks ---------------------------------------------------------------------------------
def assert_answered_by_the_fallback(site, response: httpx.Response, prompt: str, reason: str, tiny_provider) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["provider"], body["model"], body["text"]) == ("hf", "tiny-a", alone(tiny_provider, prompt))
    assert body["fallback"]["requested"] == REMOTE
    assert body["fallback"]["reason"].startswith(f"{REMOTE}: ") and reason in body["fallback"]["reason"]
    stored = record(site, body["id"])
    assert (stored["model"], stored["status"], stored["requested_model"]) == ("tiny-a", "ok", REMOTE)
    assert stored["fallback_reason"] == body["fallback"]["reason"]


def test_an_upstream_5xx_is_answered_by_the_fallback(site, upstream, tiny_provider):
    upstream.script("POST", "/v1/chat/completions", json_reply(500, {"error": {"message": "the upstream broke"}}))
    prompt = "Fallback after a 500."
    response = predict(site, prompt, model=REMOTE)
    assert_answered_by_the_fallback(site, response, prompt, "answered HTTP 500", tiny_provider)


def test_a_silent_upstream_is_answered_by_the_fallback_after_the_read_timeout(site, upstream, tiny_provider):
    upstream.script("POST", "/v1/chat/completions", Reply(delay_before=DEADLINE))  # silent until teardown
    prompt = "Fallback after a timeout."
    started = time.monotonic()
    response = predict(site, prompt, model=REMOTE)
    assert time.monotonic() - started >= READ_TIMEOUT
    assert_answered_by_the_fallback(site, response, prompt, f"sent nothing for {READ_TIMEOUT} s", tiny_provider)


def test_a_streamed_predict_names_the_fallback_in_its_done_event(site, upstream, tiny_provider):
    upstream.script("POST", "/v1/chat/completions", json_reply(503, {"error": {"message": "overloaded"}}))
    prompt = "Fallback while streaming."
    body = {"prompt": prompt, "max_new_tokens": TOKENS, "model": REMOTE, "stream": True, **SAMPLING}
    deltas, done = [], None
    with site.http.stream("POST", "/api/v1/predict", json=body) as response:
        assert response.status_code == 200
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                if event == "done":
                    done = data
                else:
                    assert event is None, data
                    deltas.append(data["delta"])
    assert "".join(deltas) == alone(tiny_provider, prompt)
    assert done is not None and done["model"] == "tiny-a"
    assert done["fallback"]["requested"] == REMOTE and "answered HTTP 503" in done["fallback"]["reason"]
    stored = record(site, done["id"])
    assert (stored["requested_model"], stored["fallback_reason"]) == (REMOTE, done["fallback"]["reason"])


def test_a_refused_connection_is_answered_by_the_fallback(
    live_server_factory, tmp_path, tiny_models_dir, tiny_provider
):
    env = site_env(tiny_models_dir, closed_port_url())
    site = prepared(live_server_factory(**env), tmp_path / "data", env)
    prompt = "Fallback when nobody listens."
    response = predict(site, prompt, model=REMOTE)
    assert_answered_by_the_fallback(site, response, prompt, "could not connect to", tiny_provider)
    # The /v1 answer names the model that answered.
    completion = site.sdk.chat.completions.create(
        model=REMOTE, messages=messages(prompt), max_tokens=TOKENS, **SAMPLING
    )
    assert completion.model == "tiny-a"
    assert completion.choices[0].message.content == alone(tiny_provider, prompt)
    # Streamed, every chunk names it too.
    chunks = list(
        site.sdk.chat.completions.create(
            model=REMOTE, messages=messages(prompt), max_tokens=TOKENS, stream=True, **SAMPLING
        )
    )
    assert chunks and {chunk.model for chunk in chunks} == {"tiny-a"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == alone(tiny_provider, prompt)


# --- (d) the list, and staff unloading --------------------------------------------------------------
def test_the_list_shows_every_model_whose_state_follows_use_and_staff_unload(site, upstream):
    for model in ("tiny-b", REMOTE):  # idle to begin with, whatever ran before
        site.staff.post(f"/api/v1/models/{model}/unload").raise_for_status()
    listed = pool(site)
    assert {"tiny-a", "tiny-b", REMOTE, "all-MiniLM-L6-v2"} <= set(listed)
    assert [(listed[m]["kind"], listed[m]["state"]) for m in ("tiny-a", "tiny-b", REMOTE)] == [
        ("local", "loaded"),  # the default loads when the server starts
        ("local", "idle"),
        ("remote", "idle"),
    ]
    assert listed["all-MiniLM-L6-v2"]["kind"] == "embedding"
    assert listed["tiny-a"]["default"] is True and listed["tiny-b"]["default"] is False
    assert listed[REMOTE]["fallbacks"] == ["tiny-a"]

    upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Hi"])))
    for model in ("tiny-b", REMOTE):
        predict(site, "Use me.", model=model).raise_for_status()
    listed = pool(site)
    assert (listed["tiny-b"]["state"], listed[REMOTE]["state"]) == ("loaded", "loaded")
    assert listed["tiny-b"]["memory_mb"] > 0  # its runner, measured
    assert listed["tiny-b"]["last_used"] is not None and listed["tiny-b"]["queue"] == 0

    assert site.http.post("/api/v1/models/tiny-b/unload").status_code == 403  # staff only
    unloaded = site.staff.post("/api/v1/models/tiny-b/unload")
    assert unloaded.status_code == 200 and unloaded.json()["state"] == "idle"
    assert pool(site)["tiny-b"]["state"] == "idle"
    wait_for(lambda: not runner_pids(site, "tiny-b"), "tiny-b's runner to end")
    assert site.staff.post("/api/v1/models/tiny-z/unload").status_code == 404


# --- (e) keep_alive 0 ----------------------------------------------------------------------------------
def test_keep_alive_zero_unloads_the_model_and_ends_its_runner_right_after_the_answer(site):
    predict(site, "Load me.", model="tiny-b").raise_for_status()
    assert pool(site)["tiny-b"]["state"] == "loaded"
    [runner] = runner_pids(site, "tiny-b")

    answered = predict(site, "Then let go.", model="tiny-b", keep_alive="0")
    assert answered.status_code == 200 and answered.json()["model"] == "tiny-b"
    assert pool(site)["tiny-b"]["state"] == "idle"
    wait_for(lambda: runner not in runner_pids(site, "tiny-b"), "tiny-b's runner to end")
    assert not runner_pids(site, "tiny-b")
    assert runner_pids(site, "tiny-a")  # the default keeps its runner
