"""Replicas on live servers: a site whose model is served by two other llmsite instances, one killed mid-run.

Two upstream sites serve the tiny model on `/v1/` (one database between them, so one API key opens
both); a third site names both as replicas of `openai/tiny-a` (OPENAI_BASE_URL with two base URLs).
Clients keep asking the third site for JSON and streamed answers. Replica A's engine is held
(`faults/sitecustomize.py`: its forward passes wait while a file exists) until a request is waiting
on it for its first token, then A's server and its runner are killed (SIGKILL). Every request that
had not received a token must have been answered by B; A shows out of service in /api/v1/models and
/metrics; started again on its port, A is probed back and answers requests again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from llmsite.testing import ROOT, LiveServer, start_live_server

pytestmark = pytest.mark.live_server

FAULTS = Path(__file__).resolve().parent / "faults"
DEADLINE = 180  # seconds any one awaited condition may take on a busy machine
METRICS_TOKEN = "a-metrics-token-for-the-replica-test"
MODEL = "openai/tiny-a"
WORKERS = 6


@dataclass
class Outcome:
    streamed: bool
    status: int = 0
    deltas: int = 0
    done: bool = False
    error: str = ""
    after_kill: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200 and (self.done or not self.streamed) and not self.error


@dataclass
class Traffic:
    """Clients asking the front site until told to stop; every answer's outcome is kept."""

    url: str
    token: str
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    killed: threading.Event = field(default_factory=threading.Event)

    def run(self, worker: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=120) as http:
            turn = 0
            while not self.stop.is_set():
                turn += 1
                # Sampled (temperature 1, no seed), so no answer comes from a cache.
                body = {"prompt": f"Tell story {worker}.{turn}.", "max_new_tokens": 24, "temperature": 1.0}
                outcome = Outcome(streamed=(worker + turn) % 2 == 0)
                try:
                    if outcome.streamed:
                        self._stream(http, body, outcome)
                    else:
                        response = http.post("/api/v1/predict", json=body)
                        outcome.status = response.status_code
                        if response.status_code != 200:
                            outcome.error = response.text
                except httpx.HTTPError as exc:
                    outcome.error = f"client: {exc!r}"
                outcome.after_kill = self.killed.is_set()
                self.outcomes.append(outcome)

    @staticmethod
    def _stream(http: httpx.Client, body: dict, outcome: Outcome) -> None:
        with http.stream("POST", "/api/v1/predict", json={**body, "stream": True}) as response:
            outcome.status = response.status_code
            if response.status_code != 200:
                outcome.error = response.read().decode()
                return
            event = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    if event == "done":
                        outcome.done = True
                    elif event == "error":
                        outcome.error = line
                    else:
                        outcome.deltas += 1
                elif not line:
                    event = ""

    def answered_after_kill(self) -> int:
        return sum(1 for o in list(self.outcomes) if o.after_kill and o.ok)


def wait_for(what: str, check, deadline: float = DEADLINE):
    ends = time.monotonic() + deadline
    while time.monotonic() < ends:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"waited {deadline} s for {what}")


def upstream_env(tiny_models_dir: Path, data_dir: Path, stall: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DEBUG": "False",
        "MODELS_DIR": str(tiny_models_dir),
        "LLM_PROVIDER": "hf",
        "LLM_MODEL": "tiny-a",
        "DEVICE": "cpu",
        "EMBEDDINGS_LOAD_AT_START": "never",
        "METRICS_TOKEN": METRICS_TOKEN,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")])),
        "LLMSITE_TEST_STALL_FILE": str(stall),
    }


def register(url: str, username: str) -> str:
    """A new user's access token."""
    credentials = {"username": username, "password": "a long pass phrase"}
    with httpx.Client(base_url=url, timeout=60) as http:
        http.post("/api/v1/auth/register", json=credentials).raise_for_status()
        return http.post("/api/v1/auth/token", json=credentials).raise_for_status().json()["access"]


def replica_rows(front: LiveServer, token: str) -> dict[str, dict]:
    response = httpx.get(front.url + "/api/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    [row] = [row for row in response.raise_for_status().json()["data"] if row["id"] == MODEL]
    return {replica["url"]: replica for replica in row.get("replicas", ())}


def metrics(server: LiveServer) -> str:
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    return httpx.get(server.url + "/metrics", headers=headers, timeout=30).raise_for_status().text


def kill_with_children(server: LiveServer) -> None:
    """SIGKILL the server and its runner at once, as a machine that dies."""
    process = psutil.Process(server.process.pid)
    for each in [*process.children(recursive=True), process]:
        each.kill()
    server.process.wait(timeout=30)


@pytest.mark.timeout(1200)
def test_a_killed_replica_costs_no_request_before_its_first_token_and_is_probed_back(tiny_models_dir, tmp_path):
    shared = tmp_path / "upstreams"
    stall_a, stall_b = tmp_path / "stall-a", tmp_path / "stall-b"
    env_a = upstream_env(tiny_models_dir, shared, stall_a)
    env_b = upstream_env(tiny_models_dir, shared, stall_b)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env_a, check=True)
    servers: list[LiveServer] = []
    traffic: Traffic | None = None
    workers: list[threading.Thread] = []
    try:
        a, b = LiveServer(env_a, tmp_path / "a.log"), LiveServer(env_b, tmp_path / "b.log")
        servers += [a, b]
        for upstream in (a, b):
            upstream.wait_ready("/readyz")
        access = register(a.url, "front-site")
        key = httpx.post(
            a.url + "/api/v1/auth/keys", json={"name": "front"}, headers={"Authorization": f"Bearer {access}"}
        )
        key = key.raise_for_status().json()["key"]
        url_a, url_b = f"{a.url}/v1", f"{b.url}/v1"
        front = start_live_server(
            tmp_path / "front",
            LLM_PROVIDER="openai",
            LLM_MODEL="tiny-a",  # the default model: its id is openai/tiny-a
            OPENAI_MODEL="tiny-a",
            OPENAI_BASE_URL=f"{url_a},{url_b}",
            OPENAI_API_KEY=key,
            UPSTREAM_COOLDOWN_SECONDS="1",
            UPSTREAM_COOLDOWN_MAX_SECONDS="4",
            METRICS_TOKEN=METRICS_TOKEN,
            MODELS_DIR=str(tiny_models_dir),
            EMBEDDINGS_LOAD_AT_START="never",
        )
        servers.append(front)
        token = register(front.url, "ada")
        traffic = Traffic(front.url, token)
        workers = [threading.Thread(target=traffic.run, args=(i,), daemon=True) for i in range(WORKERS)]
        for worker in workers:
            worker.start()
        wait_for("answers through both replicas", lambda: sum(o.ok for o in list(traffic.outcomes)) >= 2 * WORKERS)
        assert {r["state"] for r in replica_rows(front, token).values()} == {"up"}

        # Hold A's engine until a request waits on it for its first token, then kill A and its runner.
        stall_a.touch()
        # Two in flight: at least one was sent after the engine stopped, so it has no token yet.
        wait_for("requests waiting on the held replica", lambda: replica_rows(front, token)[url_a]["in_flight"] >= 2)
        kill_with_children(a)
        traffic.killed.set()
        wait_for("answers after the kill", lambda: traffic.answered_after_kill() >= 2 * WORKERS)

        rows = replica_rows(front, token)
        assert rows[url_a]["healthy"] is False and rows[url_a]["state"] in ("cooling_down", "probing")
        assert rows[url_a]["failures"] >= 1 and rows[url_a]["last_error"]
        assert rows[url_b]["healthy"] is True
        scraped = metrics(front)
        assert f'llmsite_upstream_up{{model="{MODEL}",replica="{url_a}"}} 0.0' in scraped
        assert f'llmsite_upstream_up{{model="{MODEL}",replica="{url_b}"}} 1.0' in scraped
        counted = f'llmsite_upstream_failures_total{{model="{MODEL}",replica="{url_a}"}} '
        [failures] = [line for line in scraped.splitlines() if line.startswith(counted)]
        assert float(failures.removeprefix(counted)) >= 1

        # Start A again on its port: the front probes it back and sends it work again.
        stall_a.unlink()
        restarted = LiveServer(env_a, tmp_path / "a-restarted.log", port=a.port)
        servers.append(restarted)
        restarted.wait_ready("/readyz")
        wait_for("A back in service", lambda: replica_rows(front, token)[url_a]["healthy"])
        answered = 'llmsite_http_requests_total{endpoint="/v1/chat/completions",method="POST",status="200"} '

        def restarted_answers() -> float:
            lines = [line for line in metrics(restarted).splitlines() if line.startswith(answered)]
            return float(lines[0].removeprefix(answered)) if lines else 0.0

        wait_for("requests answered by the restarted A", lambda: restarted_answers() >= 1)
    finally:
        if traffic is not None:
            traffic.stop.set()
        for worker in workers:
            worker.join(timeout=180)
        for server in servers:
            if server.process.poll() is None:
                server.stop()

    outcomes = traffic.outcomes
    failed = [o for o in outcomes if not o.ok]
    # A JSON answer reaches the client whole: none may fail. A stream may fail only after its first token.
    assert [o for o in failed if not o.streamed] == []
    assert [o for o in failed if o.streamed and o.deltas == 0] == []
    assert sum(o.ok for o in outcomes) > 4 * WORKERS
