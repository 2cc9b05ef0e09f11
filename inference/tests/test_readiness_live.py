"""/readyz on a live site whose model's engine gets stuck: 503 naming it within the bound, 200 once it moves.

The site serves the tiny model from its runner process, as shipped. The runner's scheduler is held for
real: `faults/sitecustomize.py` (on the server's PYTHONPATH, so the runner loads it too) makes every
forward pass wait while a file exists. The runner itself is then stopped outright (SIGSTOP): it stops
answering, and readiness says so.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.live_server

BOUND = 2  # READINESS_STALL_SECONDS for this site
DEADLINE = 60
FAULTS = Path(__file__).resolve().parent / "faults"


def wait_for_readyz(server, status: int) -> tuple[dict, float]:
    """Poll /readyz until it answers `status`; its body and when it did."""
    ends = time.monotonic() + DEADLINE
    while time.monotonic() < ends:
        response = httpx.get(server.url + "/readyz", timeout=10)
        if response.status_code == status:
            return response.json(), time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"/readyz never answered {status}; last: {response.status_code} {response.text}")


def runner_pid(server) -> int:
    children = psutil.Process(server.process.pid).children(recursive=True)
    [runner] = [c for c in children if "inference.runners.server" in " ".join(c.cmdline())]
    return runner.pid


def test_readyz_fails_naming_a_stuck_engine_or_a_silent_runner_and_recovers(
    live_server_factory, tiny_models_dir, tmp_path
):
    stall = tmp_path / "stall"
    server = live_server_factory(
        MODELS_DIR=str(tiny_models_dir),
        LLM_PROVIDER="hf",
        LLM_MODEL="tiny-a",
        DEVICE="cpu",
        EMBEDDINGS_LOAD_AT_START="never",
        READINESS_STALL_SECONDS=str(BOUND),
        PYTHONPATH=os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")])),
        LLMSITE_TEST_STALL_FILE=str(stall),
    )
    server.wait_ready("/readyz")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        credentials = {"username": "ada", "password": "a long pass phrase"}
        http.post("/api/v1/auth/register", json=credentials).raise_for_status()
        token = http.post("/api/v1/auth/token", json=credentials).raise_for_status().json()["access"]
    answer: list[str] = []

    def ask() -> None:
        body = {"prompt": "Tell me about the sea.", "max_new_tokens": 16, "stream": True}
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.stream("POST", server.url + "/api/v1/predict", json=body, headers=headers, timeout=120) as r:
            answer.append(r.read().decode())

    try:
        stall.touch()
        stuck_at = time.monotonic()
        asking = threading.Thread(target=ask)
        asking.start()
        body, failed_at = wait_for_readyz(server, 503)
        detail = body["checks"]["provider"]["detail"]
        assert not body["checks"]["provider"]["ok"]
        assert "the engine of tiny-a is stuck: no step completed for" in detail and "1 running" in detail, detail
        print(f"\n/readyz failed {failed_at - stuck_at:.1f} s after the engine stopped (bound {BOUND} s)")
    finally:
        stall.unlink(missing_ok=True)
    asking.join(DEADLINE)
    assert "event: done" in answer[0], answer
    wait_for_readyz(server, 200)

    pid = runner_pid(server)
    os.kill(pid, signal.SIGSTOP)
    try:
        body, _ = wait_for_readyz(server, 503)
        detail = body["checks"]["provider"]["detail"]
        assert f"the runner of tiny-a (pid {pid}) has not answered for" in detail, detail
    finally:
        os.kill(pid, signal.SIGCONT)
    body, _ = wait_for_readyz(server, 200)
    assert body["checks"]["provider"]["ok"], body
