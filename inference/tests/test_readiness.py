"""Readiness proves the engine answers: a stuck step or a dead engine thread makes /readyz fail, naming it.

In this process: the tiny model under the real batching scheduler, its forward pass held by a real
forward pre-hook on an event (a stuck step), or its loop ended by a job it cannot admit (an error
outside the per-step handler). In a runner process: the same faults, injected at start-up by
`faults/sitecustomize.py`, and the runner stopped outright (SIGSTOP). Waits poll the real state with
a generous deadline; the stall bound is small (READINESS_STALL_SECONDS) so the tests are quick.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path

import pytest

from inference import health
from inference.engine import get_engine
from inference.providers.base import Completion, GenerationRequest, ProviderUnavailable, SamplingParams, TextDelta
from inference.providers.batching import BatchJob
from inference.providers.hf import HFProvider
from inference.providers.local import LocalOptions
from inference.runners.client import READY, RESTARTING, RunnerProvider
from inference.tests.test_runners import wait_for

DEADLINE = 60.0
BOUND = 1.0  # READINESS_STALL_SECONDS in these tests
FAULTS = Path(__file__).resolve().parent / "faults"


def ask(max_new_tokens: int = 8) -> GenerationRequest:
    return GenerationRequest(prompt="Tell me about the sea.", sampling=SamplingParams(max_new_tokens=max_new_tokens))


@pytest.fixture
def bound(settings):
    settings.READINESS_STALL_SECONDS = BOUND
    return BOUND


@pytest.fixture
def batched(tiny_models_dir):
    """`tiny-a` with continuous batching, of its own: these tests hold or end its scheduler thread."""
    provider = HFProvider("tiny-a", tiny_models_dir / "tiny-a", device="cpu", batching=True)
    provider.load()
    assert provider.scheduler is not None, provider.batching_off_reason
    get_engine().set(provider)
    yield provider
    get_engine().reset()
    provider.close()


def hold_forward(model, gate: threading.Event):
    """Make every forward pass of `model` wait for `gate` before it starts; returns the hook's handle."""

    def wait(module, args):
        gate.wait()  # returns None: the forward pass then runs with its own arguments

    return model.register_forward_pre_hook(wait)


def start(provider, request: GenerationRequest) -> tuple[threading.Event, list]:
    """Begin generating: the event is set once it ends, and the list then holds its Completion or error."""
    outcome: list = []
    finished = threading.Event()

    def done(result):
        outcome.append(result)
        finished.set()

    provider.start(request, done=done)
    return finished, outcome


def test_a_stuck_step_makes_the_model_not_ready_naming_it_and_ready_again_once_it_moves(batched, bound):
    gate = threading.Event()
    hook = hold_forward(batched.hf_model, gate)
    try:
        assert health.provider_check()[0]  # idle for any time is not stuck
        finished, outcome = start(batched, ask())
        ok, detail = wait_for(lambda: (r := health.provider_check()) and not r[0] and r, "readiness to fail")
        assert "tiny-a" in detail and "stuck" in detail and "no step completed for" in detail, detail
        assert "1 running" in detail or "1 waiting" in detail, detail
        progress = batched.progress()
        assert progress.alive and progress.stalled_s > BOUND
    finally:
        gate.set()
        hook.remove()
    assert finished.wait(DEADLINE)
    assert isinstance(outcome[0], Completion) and outcome[0].usage.completion_tokens > 0
    ok, detail = health.provider_check()
    assert ok, detail
    assert batched.progress().stalled_s == 0


@pytest.mark.django_db
def test_readyz_answers_503_naming_the_stuck_model_then_200(batched, bound, client):
    gate = threading.Event()
    hook = hold_forward(batched.hf_model, gate)
    try:
        assert client.get("/readyz").json()["checks"]["provider"]["ok"]
        finished, _outcome = start(batched, ask())
        stuck = wait_for(lambda: (r := client.get("/readyz")).status_code == 503 and r, "/readyz to answer 503")
        provider = stuck.json()["checks"]["provider"]
        assert not provider["ok"] and "the engine of tiny-a is stuck" in provider["detail"], provider
    finally:
        gate.set()
        hook.remove()
    assert finished.wait(DEADLINE)
    ready = client.get("/readyz")
    assert ready.json()["checks"]["provider"]["ok"], ready.json()


def test_a_dead_scheduler_thread_fails_its_jobs_refuses_new_ones_and_is_not_ready(batched, bound):
    scheduler = batched.scheduler
    ended: list = []
    good = BatchJob([1, 2, 3], 4, on_token=lambda token: False, on_end=lambda *args: ended.append(args))
    # A job the loop cannot admit: its prompt is no list of ids. The loop fails outside the per-step handler.
    broken = BatchJob(None, 4, on_token=lambda token: False, on_end=lambda *args: ended.append(args))
    with scheduler.paused():
        scheduler.submit(good)
        scheduler.submit(broken)
        with pytest.raises(ProviderUnavailable):
            scheduler.advance()
    wait_for(lambda: not scheduler.progress().alive, "the scheduler thread to end")
    wait_for(lambda: len(ended) == 2, "both jobs to end")
    for _tokens, reason, error in ended:  # neither is left waiting without end
        assert reason == "cancelled" and isinstance(error, ProviderUnavailable)
        assert "the engine thread of tiny-a stopped: TypeError" in error.message
    with pytest.raises(ProviderUnavailable, match="engine thread of tiny-a stopped: TypeError"):
        batched.generate(ask())
    ok, detail = health.provider_check()
    assert not ok and "the engine thread of tiny-a has stopped: TypeError" in detail, detail


# --- runner processes -------------------------------------------------------------------------
def runner_options(folder: Path) -> LocalOptions:
    return LocalOptions(model=folder.name, folder=str(folder), engine="transformers", device="cpu", workers=2)


@pytest.fixture
def faults(tmp_path, monkeypatch) -> dict[str, Path]:
    """The fault files a runner started now obeys (its environment carries them); none exists yet."""
    files = {"stall": tmp_path / "stall", "die": tmp_path / "die"}
    path = os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("LLMSITE_TEST_STALL_FILE", str(files["stall"]))
    monkeypatch.setenv("LLMSITE_TEST_DIE_FILE", str(files["die"]))
    return files


@pytest.fixture
def runner(tiny_models_dir, faults):
    provider = RunnerProvider(runner_options(tiny_models_dir / "tiny-b"))
    provider.load()
    yield provider
    provider.close()


def stream_in_background(provider, request: GenerationRequest) -> tuple[threading.Thread, list]:
    events: list = []

    def run():
        async def collect():
            try:
                async for event in provider.stream(request):
                    events.append(event)
            except Exception as exc:
                events.append(exc)

        asyncio.run(collect())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, events


def test_a_runner_reports_a_stuck_engine_and_its_recovery(runner, faults, bound):
    assert runner.progress().alive and runner.progress().stalled_s == 0
    faults["stall"].touch()
    thread, events = stream_in_background(runner, ask(16))
    problem = wait_for(lambda: health.engine_problem(runner, "tiny-b"), "the runner to report the stall")
    assert "the engine of tiny-b is stuck: no step completed for" in problem and "1 running" in problem, problem
    assert runner.process.silent_s() < BOUND  # its info thread answers while its engine thread is stuck
    faults["stall"].unlink()
    thread.join(DEADLINE)
    assert any(isinstance(e, TextDelta) for e in events), events
    wait_for(lambda: not health.engine_problem(runner, "tiny-b"), "the runner to report progress again")


def test_a_runner_whose_engine_thread_dies_exits_says_why_and_is_restarted(runner, faults, bound):
    first = runner.process.pid
    faults["die"].touch()
    with pytest.raises(ProviderUnavailable):  # the waiting request learns it, it does not wait forever
        runner.generate(ask())
    wait_for(lambda: runner.process.state == RESTARTING, "the runner to exit")
    faults["die"].unlink()
    reason = runner.process.reason
    assert "exited with code 70" in reason and "the engine thread died" in reason and "injected fault" in reason
    assert "injected fault" in health.engine_problem(runner, "tiny-b") or runner.process.state == READY
    wait_for(lambda: runner.process.state == READY, "the runner to come back")
    assert runner.process.pid != first
    assert runner.generate(ask()).usage.completion_tokens > 0
    assert not health.engine_problem(runner, "tiny-b")


def test_a_runner_that_stops_answering_is_not_ready_until_it_answers_again(runner, bound):
    os.kill(runner.process.pid, signal.SIGSTOP)
    try:
        problem = wait_for(lambda: health.engine_problem(runner, "tiny-b"), "the silence to count")
        assert f"the runner of tiny-b (pid {runner.process.pid}) has not answered for" in problem, problem
    finally:
        os.kill(runner.process.pid, signal.SIGCONT)
    wait_for(lambda: not health.engine_problem(runner, "tiny-b"), "the runner to answer again")
