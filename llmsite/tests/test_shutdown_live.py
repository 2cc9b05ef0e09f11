"""SIGTERM to the serving process, as `make run` and the container start it (`python -m llmsite.serve`).

The real model (SmolLM2 in its runner process) answers: long answers in every protocol (SSE predict,
/v1 chat completions streamed, the chat WebSocket, a plain predict), asked for more tokens than the
grace period lets them make, and a short one. Then SIGTERM: new work is refused while the long answers
run, the short one finishes, the long ones end with their protocol's error once the grace has passed,
the process exits 0, its runner is gone, and the database holds every answer's record and the request
metrics (the flusher's interval is an hour here: only the shutdown wrote them).
"""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import psutil
import pytest
from django.conf import settings
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

pytestmark = [pytest.mark.live_server, pytest.mark.real_model]

GRACE = 8  # SHUTDOWN_GRACE_SECONDS here
LONG = 2000  # tokens: far more than the grace lets a 2-core CPU make
# Sampling at temperature 2 makes text the model never ends by itself (end of sequence is one token in 49,152).
WILD = {"temperature": 2.0, "seed": 7}
DEADLINE = 120  # generous: waits poll, and only a broken shutdown gets near it
MODEL = "SmolLM2-135M-Instruct"


class Answer(threading.Thread):
    """One answer read in the background: its parts as they arrive, and when it ended."""

    def __init__(self, read):
        super().__init__(daemon=True)
        self.read = read
        self.parts: list = []
        self.first = threading.Event()
        self.ended_at: float | None = None
        self.failure: BaseException | None = None

    def got(self, part) -> None:
        self.parts.append(part)
        self.first.set()

    def run(self) -> None:
        try:
            self.read(self)
        except BaseException as exc:
            self.failure = exc
        finally:
            self.ended_at = time.monotonic()
            self.first.set()


def sse(url: str, path: str, body: dict, token: str):
    def read(answer: Answer) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.stream("POST", url + path, json=body, headers=headers, timeout=DEADLINE) as response:
            answer.status = response.status_code
            block = []
            for line in response.iter_lines():
                if line:
                    block.append(line)
                    continue
                event = next((b[7:] for b in block if b.startswith("event: ")), "message")
                data = next((b[6:] for b in block if b.startswith("data: ")), "")
                answer.got((event, json.loads(data) if data.startswith("{") else data))
                block = []

    return read


def websocket(url: str, body: dict, token: str):
    def read(answer: Answer) -> None:
        with connect(url.replace("http", "ws") + "/ws/v1/chat/", open_timeout=30) as socket:
            socket.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(socket.recv(timeout=30))["type"] == "ready"
            socket.send(json.dumps({"type": "generate", **body}))
            while True:
                message = json.loads(socket.recv(timeout=DEADLINE))
                answer.got(message)
                if message["type"] in ("done", "error"):
                    return

    return read


def plain(url: str, body: dict, token: str):
    def read(answer: Answer) -> None:
        answer.first.set()  # nothing arrives before the end
        response = httpx.post(
            url + "/api/v1/predict", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=DEADLINE
        )
        answer.status = response.status_code
        answer.got(response.json())

    return read


def runner_pids(pid: int) -> list[int]:
    children = psutil.Process(pid).children(recursive=True)
    return [c.pid for c in children if "inference.runners.server" in " ".join(c.cmdline())]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_sigterm_drains_finishes_or_ends_each_answer_records_everything_and_exits_0(live_server_factory, tmp_path):
    server = live_server_factory(
        MODELS_DIR=str(settings.MODELS_DIR),
        LLM_MAX_NEW_TOKENS=str(LONG),
        SHUTDOWN_GRACE_SECONDS=str(GRACE),
        METRICS_FLUSH_SECONDS="3600",
        EMBEDDINGS_LOAD_AT_START="never",
    )
    server.wait_ready("/readyz")
    url = server.url
    with httpx.Client(base_url=url, timeout=60) as http:
        credentials = {"username": "ada", "password": "a long pass phrase"}
        http.post("/api/v1/auth/register", json=credentials).raise_for_status()
        token = http.post("/api/v1/auth/token", json=credentials).raise_for_status().json()["access"]
        warm = http.post(
            "/api/v1/predict", json={"prompt": "Hi", "max_new_tokens": 4}, headers={"Authorization": f"Bearer {token}"}
        )
        assert warm.status_code == 200, warm.text
    runners = runner_pids(server.process.pid)
    assert runners

    ask = {"prompt": "Write a very long story.", "max_new_tokens": LONG, **WILD}
    long_answers = {
        "sse": Answer(sse(url, "/api/v1/predict", {**ask, "stream": True}, token)),
        "v1": Answer(
            sse(
                url,
                "/v1/chat/completions",
                {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": ask["prompt"]}],
                    "max_tokens": LONG,
                    "stream": True,
                    **WILD,
                },
                token,
            )
        ),
        "ws": Answer(websocket(url, ask, token)),
        "plain": Answer(plain(url, ask, token)),
    }
    short = Answer(
        sse(url, "/api/v1/predict", {"prompt": "Say hello.", "max_new_tokens": 24, **WILD, "stream": True}, token)
    )
    for answer in [*long_answers.values(), short]:
        answer.start()
    for answer in [*long_answers.values(), short]:
        assert answer.first.wait(DEADLINE) and answer.failure is None, answer.failure
    time.sleep(0.5)  # the plain predict has reached the model too (it shows nothing until it ends)

    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)

    # New work is refused while the answers run; the probes answer.
    refused = httpx.post(url + "/api/v1/predict", json={"prompt": "Hi"}, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down", refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    ready = httpx.get(url + "/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "shutting_down", ready.text
    assert httpx.get(url + "/healthz").status_code == 200
    with pytest.raises(InvalidStatus):
        connect(url.replace("http", "ws") + "/ws/v1/chat/", open_timeout=30).close()

    short.join(DEADLINE)
    assert short.failure is None and short.parts[-1][0] == "done", short.parts[-3:]
    assert short.parts[-1][1]["finish_reason"] in ("length", "stop")

    for answer in long_answers.values():
        answer.join(DEADLINE)
        assert answer.failure is None, answer.failure
        assert answer.ended_at - signalled >= GRACE  # they ran out their grace, no less
    event, data = long_answers["sse"].parts[-1]
    assert event == "error" and data["error"]["code"] == "shutting_down", long_answers["sse"].parts[-3:]
    assert len(long_answers["sse"].parts) > 1  # it had streamed text before
    _event, chunk = long_answers["v1"].parts[-1]
    assert chunk["error"]["code"] == "shutting_down", long_answers["v1"].parts[-3:]  # OpenAI's in-band error
    message = long_answers["ws"].parts[-1]
    assert message["type"] == "error" and message["error"]["code"] == "shutting_down", long_answers["ws"].parts[-3:]
    assert long_answers["plain"].status == 503
    assert long_answers["plain"].parts[-1]["error"]["code"] == "shutting_down"

    code = server.process.wait(DEADLINE)
    exited = time.monotonic() - signalled
    assert code == 0, server.log()[-3000:]
    assert all(gone(pid) for pid in runners), runners
    print(f"\nexit 0 {exited:.1f} s after SIGTERM (grace {GRACE} s)")

    records = server.query("SELECT source, status, completion_tokens, error FROM inference_inferencerecord ORDER BY id")
    metrics = dict(server.query("SELECT endpoint, COUNT(*) FROM dashboard_requestmetric GROUP BY endpoint"))
    assert [(source, status) for source, status, _tokens, _error in records[:1]] == [("api", "ok")]  # the warm-up
    ended = [r for r in records if r[1] == "error"]
    assert sorted(source for source, *_rest in ended) == sorted(["sse", "openai", "ws", "api"]), records
    assert all("shutting down" in error for *_rest, error in ended), ended
    assert all(tokens > 0 for _source, _status, tokens, _error in ended if _source != "api"), ended
    assert sum(1 for _s, status, *_rest in records if status == "ok") == 2, records  # warm-up and the short one
    # Every request made before SIGTERM, and the refused one after it: written by the shutdown's flush.
    assert metrics.get("/api/v1/auth/register") == 1 and metrics.get("/api/v1/auth/token") == 1, metrics
    assert metrics.get("/api/v1/predict") == 5, metrics  # warm-up, sse, plain, short, and the refused one
    assert metrics.get("/v1/chat/completions") == 1, metrics
