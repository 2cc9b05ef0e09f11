"""Continuous batching: requests share forward passes, and each gets exactly what it would get alone."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference.engine import get_engine
from inference.providers.base import GenerationRequest, PromptTooLong, ProviderError, StreamEnd, TextDelta
from inference.providers.batching import BatchJob, BatchLimits, BatchScheduler, QueueFull
from inference.providers.hf import HFProvider

PROMPTS = [
    "Tell me about the sea.",
    "Cats and dogs who live together in a small house with a garden and a pond",
    "Paris",
    "Explain quantum computing, in detail please, with examples.",
    "x",
]


@pytest.fixture(scope="module")
def batched(tiny_models_dir):
    """`tiny-a` with continuous batching, loaded once for this module."""
    provider = HFProvider("tiny-a", tiny_models_dir / "tiny-a", device="cpu", batching=True)
    provider.load()
    assert provider.scheduler is not None, provider.batching_off_reason
    yield provider
    provider.close()


def in_parallel(fn, items, stagger: float = 0.0):
    """fn over items from one thread each, the i-th started `i * stagger` seconds late."""

    def run(pair):
        index, item = pair
        time.sleep(index * stagger)
        return fn(item)

    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(run, enumerate(items)))


def job_for(ids: list[int], max_new: int, **fields) -> tuple[BatchJob, threading.Event]:
    ended = threading.Event()
    job = BatchJob(ids, max_new, on_token=lambda token: False, on_end=lambda *args: ended.set(), **fields)
    return job, ended


def test_batched_greedy_tokens_are_the_ones_generate_gives_each_request_alone(tiny_provider):
    import torch

    model = tiny_provider.hf_model
    prompts = [tiny_provider.prepare(GenerationRequest(prompt=p)) for p in PROMPTS]
    # eos never ends a row here, so every row runs its full length and the comparison covers every step.
    scheduler = BatchScheduler(model, eos_token_ids=[-1], pad_token_id=2, limits=BatchLimits(max_batch_size=8))
    try:
        lengths = [30, 12, 25, 40, 18]  # rows leave at different steps; later ones join a running batch
        jobs = [job_for(ids, n) for ids, n in zip(prompts, lengths, strict=True)]

        def submit(pair):
            scheduler.submit(pair[0])
            assert pair[1].wait(30)
            return pair[0].tokens

        got = in_parallel(submit, jobs, stagger=0.01)
        assert scheduler.peak_batch > 1
    finally:
        scheduler.close()
    for ids, n, tokens in zip(prompts, lengths, got, strict=True):
        with torch.inference_mode():
            alone = model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
            )
        assert tokens == alone[0, len(ids) :].tolist()


def test_requests_that_arrive_later_join_the_running_batch(batched):
    steps_before = batched.scheduler.steps
    requests = [GenerationRequest(prompt=p, max_new_tokens=40) for p in PROMPTS[:4]]
    results = in_parallel(batched.generate, requests, stagger=0.02)
    assert all(r.usage.completion_tokens == 40 for r in results)
    # Alone they would take 4 x 40 forward passes; together about 40 plus a prefill per newcomer.
    assert batched.scheduler.steps - steps_before < 80


def test_batched_provider_answers_like_the_one_by_one_provider(tiny_provider, batched):
    requests = [GenerationRequest(prompt=p, max_new_tokens=10 + 4 * i) for i, p in enumerate(PROMPTS)]
    requests += [
        GenerationRequest(prompt="Once", max_new_tokens=16, temperature=0.9, top_p=0.9, seed=7),
        GenerationRequest(prompt="Once upon a time", max_new_tokens=20, temperature=1.2, seed=8),
    ]
    alone = [tiny_provider.generate(r) for r in requests]
    together = in_parallel(batched.generate, requests, stagger=0.005)
    for a, b in zip(alone, together, strict=True):
        assert (b.text, b.usage, b.finish_reason) == (a.text, a.usage, a.finish_reason)


def test_a_stop_string_ends_only_its_own_request(tiny_provider, batched):
    full = tiny_provider.generate(GenerationRequest(prompt="Hi", max_new_tokens=24)).text
    stop = full[4:6]
    cut, other = in_parallel(
        batched.generate,
        [
            GenerationRequest(prompt="Hi", max_new_tokens=24, stop=(stop,)),
            GenerationRequest(prompt="Tell me more", max_new_tokens=24),
        ],
    )
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop"
    assert other.usage.completion_tokens == 24


async def test_streams_concatenate_to_the_generated_text(batched):
    request = GenerationRequest(prompt="Stream me", max_new_tokens=20)
    events = [event async for event in batched.stream(request)]
    assert isinstance(events[-1], StreamEnd)
    assert events[-1].usage.completion_tokens == 20
    assert events[-1].ttft is not None
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == batched.generate(request).text


async def test_a_consumer_that_leaves_stops_its_row_and_not_the_others(batched):
    before = batched.produced_tokens
    other = asyncio.create_task(batched.agenerate(GenerationRequest(prompt="Keep going", max_new_tokens=60)))
    stream = batched.stream(GenerationRequest(prompt="Go on", max_new_tokens=250))
    async for event in stream:
        assert isinstance(event, TextDelta)
        break
    await stream.aclose()
    finished = await other
    assert finished.usage.completion_tokens == 60
    await asyncio.sleep(0.1)
    stopped_at = batched.produced_tokens
    await asyncio.sleep(0.2)
    assert batched.produced_tokens == stopped_at
    assert stopped_at - before < 250 + 60
    assert batched.scheduler.running == 0


async def test_a_prompt_too_long_fails_before_queueing(batched):
    with pytest.raises(PromptTooLong):
        async for _ in batched.stream(GenerationRequest(prompt="word " * 400, max_new_tokens=2)):
            pass
    with pytest.raises(PromptTooLong):
        batched.generate(GenerationRequest(prompt="word " * 400, max_new_tokens=2))


def test_a_full_batch_queues_and_a_full_queue_refuses(tiny_provider):
    ids = tiny_provider.prepare(GenerationRequest(prompt="Hello"))
    scheduler = BatchScheduler(
        tiny_provider.hf_model, eos_token_ids=[-1], pad_token_id=2, limits=BatchLimits(max_batch_size=1, max_queue=1)
    )
    try:
        running, running_ended = job_for(ids, 200)
        waiting, waiting_ended = job_for(ids, 3)
        scheduler.submit(running)
        while scheduler.running == 0:
            time.sleep(0.005)
        scheduler.submit(waiting)  # the batch is full: it waits
        with pytest.raises(QueueFull) as refused:
            scheduler.submit(job_for(ids, 3)[0])
        assert isinstance(refused.value, ProviderError) and not refused.value.permanent
        running.cancel.set()
        assert running_ended.wait(5) and waiting_ended.wait(5)
        assert len(waiting.tokens) == 3
        assert len(running.tokens) < 200
    finally:
        scheduler.close()


def test_closing_ends_waiting_requests_with_an_error(tiny_provider):
    ids = tiny_provider.prepare(GenerationRequest(prompt="Hello"))
    scheduler = BatchScheduler(tiny_provider.hf_model, eos_token_ids=[-1], pad_token_id=2)
    ends = []
    job = BatchJob(ids, 200, on_token=lambda token: False, on_end=lambda tokens, reason, error: ends.append(error))
    scheduler.submit(job)
    scheduler.close()
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
        busy, ended = job_for(provider.prepare(GenerationRequest(prompt="Hello")), 250)
        provider.scheduler.submit(busy)
        while provider.scheduler.running == 0:
            time.sleep(0.005)
        response = alice_client.post("/api/v1/predict", {"prompt": "Hi", "max_new_tokens": 4}, format="json")
        busy.cancel.set()
        assert ended.wait(5)
    finally:
        provider.close()
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "provider_busy"


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
            GenerationRequest(prompt="What is the capital of France?", max_new_tokens=12),
            GenerationRequest(prompt="Write a haiku about the sea, please, with a title.", max_new_tokens=20),
            GenerationRequest.from_messages(
                [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three colours."}],
                max_new_tokens=16,
            ),
        ]
        expected = [alone.generate(r) for r in requests]
        got = in_parallel(together.generate, requests, stagger=0.05)
        assert together.scheduler.peak_batch > 1
        for a, b in zip(expected, got, strict=True):
            assert (b.text, b.usage, b.finish_reason) == (a.text, a.usage, a.finish_reason)
    finally:
        alone.close()
        together.close()
