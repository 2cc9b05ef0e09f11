"""Continuous batching: requests share forward passes, and each gets exactly what it would get alone.

The scheduler is driven step by step (`paused()`, `advance()`), never raced against a clock: each
test decides which requests are waiting when a step starts, so it holds on any machine, fast or
slow, quiet or busy.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference.engine import get_engine
from inference.providers.base import (
    Completion,
    GenerationRequest,
    PromptTooLong,
    ProviderError,
    SamplingParams,
    StreamEnd,
    TextDelta,
)
from inference.providers.batching import BatchJob, BatchLimits, BatchScheduler, QueueFull
from inference.providers.hf import HFProvider

PROMPTS = [
    "Tell me about the sea.",
    "Cats and dogs who live together in a small house with a garden and a pond",
    "Paris",
    "Explain quantum computing, in detail please, with examples.",
    "x",
]
DEADLINE = 30.0  # seconds: only a broken scheduler gets near it, however slow or busy the machine


def ask(prompt: str, **sampling) -> GenerationRequest:
    """A plain-prompt request with these sampling values."""
    return GenerationRequest(prompt=prompt, sampling=SamplingParams(**sampling))


def job_for(ids: list[int], max_new: int, **fields) -> tuple[BatchJob, threading.Event]:
    ended = threading.Event()
    job = BatchJob(ids, max_new, on_token=lambda token: False, on_end=lambda *args: ended.set(), **fields)
    return job, ended


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll until `condition` holds (another thread makes it true); fail after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


async def until(condition: Callable[[], bool]) -> None:
    """`wait_until` for a test on the event loop, which must keep running meanwhile."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


def generate_together(provider: HFProvider, requests: list[GenerationRequest]) -> list[Completion]:
    """`provider.generate` for every request, each from its own thread, all admitted at the same step."""
    scheduler = provider.scheduler
    with ThreadPoolExecutor(len(requests)) as pool:
        with scheduler.paused():
            futures = [pool.submit(provider.generate, request) for request in requests]
            wait_until(lambda: scheduler.waiting == len(requests))
            scheduler.advance()
            assert scheduler.waiting == 0  # one step admitted them all
        return [future.result(timeout=DEADLINE) for future in futures]


def test_batched_greedy_tokens_are_the_ones_generate_gives_each_request_alone(tiny_provider):
    import torch

    model = tiny_provider.hf_model
    prompts = [tiny_provider.prepare(ask(p)) for p in PROMPTS]
    lengths = [30, 12, 25, 40, 18]
    (a, a_ended), (b, b_ended), (c, c_ended), (d, d_ended), (e, e_ended) = [
        job_for(ids, n) for ids, n in zip(prompts, lengths, strict=True)
    ]
    # eos never ends a row here, so every row runs its full length and the comparison covers every step.
    scheduler = BatchScheduler(model, eos_token_ids=[-1], pad_token_id=2, limits=BatchLimits(max_batch_size=8))
    try:
        with scheduler.paused():
            scheduler.submit(a)
            scheduler.submit(b)
            scheduler.advance(3)  # a and b start together: one prefill, then decoding side by side
            assert (len(a.tokens), len(b.tokens)) == (4, 4)
            scheduler.submit(c)
            scheduler.advance()  # c joins a running batch whose cache is longer than its prompt
            assert scheduler.running == 3 and len(c.tokens) == 2
            scheduler.advance(7)  # b reaches its 12 tokens and leaves; a and c go on
            assert b_ended.is_set() and len(b.tokens) == 12
            assert scheduler.running == 2
            scheduler.submit(d)
            scheduler.submit(e)
            scheduler.advance()  # d and e join the batch that b left
            assert scheduler.running == 4
        # Released: e, c, a and d leave at different steps.
        assert all(ended.wait(DEADLINE) for ended in (a_ended, c_ended, d_ended, e_ended))
    finally:
        scheduler.close()
    for ids, n, job in zip(prompts, lengths, (a, b, c, d, e), strict=True):
        with torch.inference_mode():
            alone = model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
            )
        assert job.tokens == alone[0, len(ids) :].tolist()


def test_requests_that_arrive_later_join_the_running_batch(batched):
    scheduler = batched.scheduler
    first, *later = [ask(p, max_new_tokens=40) for p in PROMPTS[:4]]
    with ThreadPoolExecutor(4) as pool:
        with scheduler.paused():
            futures = [pool.submit(batched.generate, first)]
            wait_until(lambda: scheduler.waiting == 1)
            scheduler.advance()  # the first request runs alone: its prefill, one decoding step
            assert scheduler.running == 1
            futures += [pool.submit(batched.generate, request) for request in later]
            wait_until(lambda: scheduler.waiting == 3)
            steps_before = scheduler.steps
            scheduler.advance()  # the three join the running row
            assert (scheduler.running, scheduler.waiting) == (4, 0)
        results = [future.result(timeout=DEADLINE) for future in futures]
    assert all(r.usage.completion_tokens == 40 for r in results)
    # One prefill for the three newcomers, then 39 decoding steps shared by all four rows (the first
    # one, two tokens ahead, leaves a step early); one after the other they would take 3 x 40.
    assert scheduler.steps - steps_before == 1 + 39


def test_batched_provider_answers_like_the_one_by_one_provider(tiny_provider, batched):
    requests = [ask(p, max_new_tokens=10 + 4 * i) for i, p in enumerate(PROMPTS)]
    requests += [
        ask("Once", max_new_tokens=16, temperature=0.9, top_p=0.9, seed=7),
        ask("Once upon a time", max_new_tokens=20, temperature=1.2, seed=8),
    ]
    alone = [tiny_provider.generate(r) for r in requests]
    together = generate_together(batched, requests)
    for a, b in zip(alone, together, strict=True):
        assert (b.text, b.usage, b.finish_reason) == (a.text, a.usage, a.finish_reason)


def test_a_stop_string_ends_only_its_own_request(tiny_provider, batched):
    full = tiny_provider.generate(ask("Hi", max_new_tokens=24)).text
    stop = full[4:6]
    cut, other = generate_together(
        batched, [ask("Hi", max_new_tokens=24, stop=(stop,)), ask("Tell me more", max_new_tokens=24)]
    )
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop"
    assert other.usage.completion_tokens == 24


async def test_streams_concatenate_to_the_generated_text(batched):
    request = ask("Stream me", max_new_tokens=20)
    events = [event async for event in batched.stream(request)]
    assert isinstance(events[-1], StreamEnd)
    assert events[-1].usage.completion_tokens == 20
    assert events[-1].ttft is not None
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == batched.generate(request).text


async def test_a_consumer_that_leaves_stops_its_row_and_not_the_others(batched):
    scheduler = batched.scheduler
    before = batched.produced_tokens
    with scheduler.paused():
        other = asyncio.create_task(batched.agenerate(ask("Keep going", max_new_tokens=60)))
        stream = batched.stream(ask("Go on", max_new_tokens=250))
        first = asyncio.ensure_future(anext(stream))
        await until(lambda: scheduler.waiting == 2)
        steps = 0
        while not first.done():  # step until the consumer holds its first text
            assert steps < 50, "no text after 50 steps"
            scheduler.advance()
            steps += 1
            await asyncio.sleep(0.005)  # the event loop hands the step's text to the consumer
        assert isinstance(first.result(), TextDelta)
        await stream.aclose()  # the consumer leaves while the scheduler is held
    finished = await other
    assert finished.usage.completion_tokens == 60
    with scheduler.paused():  # the step that ended `other` is over
        assert (scheduler.running, scheduler.waiting) == (0, 0)
    # The row that lost its consumer got its prefill token and one per step it was granted, and no
    # more: it left the batch before the first step after the release.
    assert batched.produced_tokens - before == 60 + 1 + steps


async def test_a_prompt_too_long_fails_before_queueing(batched):
    with pytest.raises(PromptTooLong):
        async for _ in batched.stream(ask("word " * 400, max_new_tokens=2)):
            pass
    with pytest.raises(PromptTooLong):
        batched.generate(ask("word " * 400, max_new_tokens=2))


def test_a_full_batch_queues_and_a_full_queue_refuses(tiny_provider):
    ids = tiny_provider.prepare(ask("Hello"))
    scheduler = BatchScheduler(
        tiny_provider.hf_model, eos_token_ids=[-1], pad_token_id=2, limits=BatchLimits(max_batch_size=1, max_queue=1)
    )
    try:
        running, running_ended = job_for(ids, 200)
        waiting, waiting_ended = job_for(ids, 3)
        with scheduler.paused():
            scheduler.submit(running)
            scheduler.advance()  # it fills the batch of one
            scheduler.submit(waiting)  # so this one waits
            with pytest.raises(QueueFull) as refused:
                scheduler.submit(job_for(ids, 3)[0])
            assert isinstance(refused.value, ProviderError) and not refused.value.permanent
            running.cancel.set()
        assert running_ended.wait(DEADLINE) and waiting_ended.wait(DEADLINE)
        assert len(waiting.tokens) == 3
        assert len(running.tokens) == 2  # its prefill and the one step granted: cancelled, it took no other
    finally:
        scheduler.close()


def test_closing_ends_waiting_requests_with_an_error(tiny_provider):
    ids = tiny_provider.prepare(ask("Hello"))
    scheduler = BatchScheduler(tiny_provider.hf_model, eos_token_ids=[-1], pad_token_id=2)
    ends = []
    job = BatchJob(ids, 200, on_token=lambda token: False, on_end=lambda tokens, reason, error: ends.append(error))
    with scheduler.paused():  # the job is still waiting when the scheduler closes
        scheduler.submit(job)
        scheduler.close()
    assert job.tokens == []
    assert len(ends) == 1 and isinstance(ends[0], ProviderError)
    with pytest.raises(ProviderError):
        scheduler.submit(job_for(ids, 1)[0])


@pytest.mark.django_db
def test_an_overflowing_queue_is_a_503_for_the_client(tiny_models_dir, alice_client):
    provider = HFProvider(
        "tiny-a", tiny_models_dir / "tiny-a", device="cpu", batching=True, limits=BatchLimits(1, 2048, 0)
    )
    provider.load()
    try:
        get_engine().set(provider)
        busy, ended = job_for(provider.prepare(ask("Hello")), 250)
        with provider.scheduler.paused():
            provider.scheduler.submit(busy)
            provider.scheduler.advance()  # busy fills the batch of one, and no request may wait
            response = alice_client.post("/api/v1/predict", {"prompt": "Hi", "max_new_tokens": 4}, format="json")
            busy.cancel.set()
        assert ended.wait(DEADLINE)
    finally:
        provider.close()
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "provider_busy"
    assert response["Retry-After"] == "1"  # a full queue clears within moments


def test_the_site_builds_a_batching_provider_from_settings(tiny_settings):
    from inference.registry import build_provider, spec_from_settings

    tiny_settings.LLM_BATCHING = True
    tiny_settings.LLM_MAX_BATCH_SIZE = 3
    provider = build_provider(spec_from_settings())
    assert provider.batching and provider.limits.max_batch_size == 3
    tiny_settings.LLM_BATCHING = False
    assert not build_provider(spec_from_settings()).batching


@pytest.mark.real_model
def test_smollm2_answers_the_same_batched_as_alone(settings):
    from llmsite.model_store import ModelNotFound, resolve_llm_folder

    try:
        folder = resolve_llm_folder("SmolLM2-135M-Instruct", settings.MODELS_DIR)
    except ModelNotFound as exc:
        pytest.skip(str(exc))
    alone = HFProvider("SmolLM2-135M-Instruct", folder, device="cpu")
    together = HFProvider("SmolLM2-135M-Instruct", folder, device="cpu", batching=True)
    alone.load()
    together.load()
    try:
        requests = [
            ask("What is the capital of France?", max_new_tokens=12),
            ask("Write a haiku about the sea, please, with a title.", max_new_tokens=20),
            GenerationRequest.from_messages(
                [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three colours."}],
                max_new_tokens=16,
            ),
        ]
        expected = [alone.generate(r) for r in requests]
        got = generate_together(together, requests)
        for a, b in zip(expected, got, strict=True):
            assert (b.text, b.usage, b.finish_reason) == (a.text, a.usage, a.finish_reason)
    finally:
        alone.close()
        together.close()
