"""Runner processes: a local model answering from a process of its own, as the site serves it.

Real processes, real sockets, the tiny model (transformers engine); no sleeps stand in for
events: waits poll the runner's own state with a generous deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from inference.providers.base import GenerationRequest, PromptTooLong, ProviderError, ProviderUnavailable, TextDelta
from inference.providers.batching import QueueFull
from inference.providers.local import LocalOptions
from inference.runners.client import READY, RESTARTING, RunnerProvider

DEADLINE = 120.0


def options(folder, **overrides) -> LocalOptions:
    values = {"model": folder.name, "folder": str(folder), "engine": "transformers", "device": "cpu", "workers": 2}
    return LocalOptions(**{**values, **overrides})


def wait_for(condition, what: str, deadline: float = DEADLINE):
    ends = time.monotonic() + deadline
    while time.monotonic() < ends:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def runner(tiny_models_dir):
    provider = RunnerProvider(options(tiny_models_dir / "tiny-a"))
    provider.load()
    yield provider
    provider.close()


def request(prompt: str = "Tell me a story about a dragon.", **sampling) -> GenerationRequest:
    return GenerationRequest.from_messages([{"role": "user", "content": prompt}], **sampling)


def collect(provider, req) -> list:
    async def run():
        return [event async for event in provider.stream(req)]

    return asyncio.run(run())


def test_the_runner_answers_as_the_same_model_in_this_process(runner, tiny_provider):
    req = request(max_new_tokens=24)
    here = tiny_provider.generate(req)
    there = runner.generate(req)
    assert there.text == here.text and there.usage == here.usage and there.finish_reason == here.finish_reason
    events = collect(runner, req)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == here.text
    assert events[-1].usage == here.usage
    assert runner.engine == "transformers" and runner.context_window == tiny_provider.context_window
    assert runner.render(req) == tiny_provider.render(req)
    assert runner.count_tokens("hello there") == tiny_provider.count_tokens("hello there")
    assert runner.process.pid != os.getpid()


def test_seeded_sampling_and_stop_strings_hold_through_the_runner(runner, tiny_provider):
    req = request(max_new_tokens=20, temperature=0.9, top_p=0.9, seed=7)
    assert runner.generate(req).text == tiny_provider.generate(req).text
    free = tiny_provider.generate(request(max_new_tokens=30)).text
    stop = free[5:8]
    stopped = runner.generate(request(max_new_tokens=30, stop=[stop]))
    assert stop not in stopped.text and stopped.finish_reason == "stop"


def test_a_prompt_too_long_is_refused_before_the_runner_is_asked(runner):
    with pytest.raises(PromptTooLong):
        runner.generate(GenerationRequest(prompt="word " * 400))


def test_closing_a_stream_cancels_the_generation_in_the_runner(runner):
    async def leave_early():
        stream = runner.stream(request(max_new_tokens=200))
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        await stream.aclose()

    before = runner.status()["produced_tokens"]
    asyncio.run(leave_early())
    wait_for(lambda: runner.status()["running"] == 0, "the runner to drop the cancelled request")
    produced = runner.status()["produced_tokens"] - before
    assert produced < 200, produced


def test_a_full_queue_in_the_runner_is_queue_full_here(tiny_models_dir):
    provider = RunnerProvider(options(tiny_models_dir / "tiny-a", max_batch_size=1, max_queue=0))
    provider.load()
    try:

        async def two():
            first = provider.stream(request(max_new_tokens=200))
            await anext(first)  # running: the only place in the batch is taken
            with pytest.raises(QueueFull):
                await anext(provider.stream(request(max_new_tokens=5)))
            await first.aclose()

        asyncio.run(two())
    finally:
        provider.close()


def test_a_killed_runner_is_restarted_and_answers_again(tiny_models_dir):
    provider = RunnerProvider(options(tiny_models_dir / "tiny-b"), nice=5)
    provider.load()
    try:
        # Yields the CPU to the web process, with every thread, and so does its replacement below.
        assert all(
            os.getpriority(os.PRIO_PROCESS, t.id) == os.getpriority(os.PRIO_PROCESS, 0) + 5
            for t in psutil.Process(provider.process.pid).threads()
        )
        expected = provider.generate(request(max_new_tokens=8)).text

        async def cut_off():
            stream = provider.stream(request(max_new_tokens=200))
            await anext(stream)
            os.kill(provider.process.pid, signal.SIGKILL)
            with pytest.raises(ProviderError, match="stopped while answering"):
                async for _event in stream:
                    pass

        first_pid = provider.process.pid
        asyncio.run(cut_off())
        wait_for(lambda: provider.process.state == RESTARTING, "the watcher to notice the crash")
        with pytest.raises(ProviderUnavailable) as refused:
            provider.generate(request(max_new_tokens=8))
        assert not refused.value.permanent and "exited with code" in refused.value.message
        wait_for(lambda: provider.process.state == READY, "the runner to come back")
        assert provider.process.pid != first_pid and provider.process.restarts == 1
        assert psutil.Process(provider.process.pid).nice() == os.getpriority(os.PRIO_PROCESS, 0) + 5
        assert provider.generate(request(max_new_tokens=8)).text == expected
    finally:
        provider.close()


def test_a_runner_that_does_not_answer_in_time_leaves_its_last_known_status(runner):
    # GET /api/v1/models asks each runner with a 2 s timeout: a busy runner made it a 500.
    known = runner.status()
    os.kill(runner.process.pid, signal.SIGSTOP)
    try:
        status = runner.status()
    finally:
        os.kill(runner.process.pid, signal.SIGCONT)
    assert status["state"] == READY and status["rss_mb"] == known["rss_mb"]


def test_a_runner_that_cannot_load_says_why(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    provider = RunnerProvider(options(tmp_path / "broken"))
    with pytest.raises(ProviderUnavailable, match="broken"):
        provider.load()
    provider.close()


def test_a_runner_ends_when_the_process_that_started_it_dies(tiny_models_dir, tmp_path):
    script = (
        "import sys; from inference.runners.client import RunnerProvider; from inference.providers.local import "
        f"LocalOptions; p = RunnerProvider(LocalOptions(model='tiny-a', folder={str(tiny_models_dir / 'tiny-a')!r}, "
        "engine='transformers', device='cpu')); p.load(); print(p.process.pid, flush=True); sys.stdin.read()"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=os.getcwd(), text=True
    )
    runner_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()

    def gone() -> bool:
        try:
            os.kill(runner_pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{runner_pid}/stat") as stat:  # a zombie waiting for init counts as ended
            return stat.read().split()[2] == "Z"

    wait_for(gone, "the orphaned runner to exit")
