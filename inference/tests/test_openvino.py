"""The OpenVINO engine: exact to transformers float32, every provider feature, and a clear fallback."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference import health, registry
from inference.engine import get_engine
from inference.providers.base import (
    Completion,
    GenerationRequest,
    ProviderUnavailable,
    SamplingParams,
    StreamEnd,
    TextDelta,
)
from inference.providers.batching import BatchLimits, QueueFull
from inference.providers.hf import HFProvider
from inference.providers.openvino import OpenVINOProvider, OpenVINOScheduler
from inference.registry import ProviderSpec
from inference.tests.test_readiness import start
from inference.tests.test_runners import wait_for

MODEL = "SmolLM2-135M-Instruct"
# Varied lengths and kinds: chat questions, a plain instruction, code, a list, a long prompt.
PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain recursion to a child.",
    "List three fruits and their colours.",
    "Write a Python function that reverses a string.",
    "Why is the sky blue? Answer in two sentences.",
    "Tell me a short story about a dragon who learns to read, with a happy ending.",
    "Translate 'good morning' into French and Spanish.",
]


def greedy(prompt: str, tokens: int = 128) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, sampling=SamplingParams(max_new_tokens=tokens))


@pytest.fixture(scope="module")
def folder(smollm2_exported):
    return smollm2_exported


@pytest.fixture(scope="module")
def openvino(folder):
    provider = OpenVINOProvider(MODEL, folder, limits=BatchLimits(max_batch_size=8, max_queue=2))
    provider.load()
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def transformers(folder):
    provider = HFProvider(MODEL, folder, device="cpu", batching=False)
    provider.load()
    yield provider
    provider.close()


@pytest.mark.real_model
@pytest.mark.timeout(1200)  # transformers one by one: ~1 minute on a quiet 2-core machine, far more on a busy one
def test_greedy_answers_equal_transformers_float32_alone_and_batched(openvino, transformers):
    expected = [transformers.generate(greedy(p)).text for p in PROMPTS]
    alone = [openvino.generate(greedy(p)).text for p in PROMPTS]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        batched = list(pool.map(lambda p: openvino.generate(greedy(p)).text, PROMPTS))
    assert alone == expected
    assert batched == expected
    assert sum(len(text) for text in expected) > 8 * 200  # long answers: the comparison covers many tokens


@pytest.mark.real_model
def test_it_counts_tokens_and_stops_as_transformers_does(openvino, transformers, folder):
    request = GenerationRequest(prompt=PROMPTS[0], sampling=SamplingParams(max_new_tokens=40, stop=(" Paris",)))
    batched = HFProvider(MODEL, folder, device="cpu", batching=True)  # the transformers engine as served
    batched.load()
    try:
        ours, theirs = openvino.generate(request), batched.generate(request)
    finally:
        batched.close()
    assert ours.text == theirs.text == "The capital of France is"
    assert ours.usage == theirs.usage
    assert ours.finish_reason == "stop"
    assert openvino.generate(greedy(PROMPTS[6], 5)).finish_reason == "length"
    assert openvino.count_tokens("Hello there") == transformers.count_tokens("Hello there")
    assert openvino.context_window == transformers.context_window


@pytest.mark.real_model
def test_a_seed_repeats_a_sampled_answer_and_no_seed_varies_it(openvino):
    seeded = GenerationRequest(
        prompt="Tell a story.", sampling=SamplingParams(max_new_tokens=30, temperature=1.0, seed=7)
    )
    assert openvino.generate(seeded).text == openvino.generate(seeded).text
    free = GenerationRequest(prompt="Tell a story.", sampling=SamplingParams(max_new_tokens=30, temperature=1.0))
    assert len({openvino.generate(free).text for _ in range(4)}) > 1


@pytest.mark.real_model
@pytest.mark.parametrize("sampling", [{"temperature": 1e-129}, {"temperature": 0.7, "top_p": 1e-300}])
def test_a_vanishing_temperature_or_top_p_answers_with_the_likeliest_tokens(openvino, sampling):
    # Both round to a float32 0, which OpenVINO refuses: they were a 503 before.
    tiny = GenerationRequest(prompt=PROMPTS[0], sampling=SamplingParams(max_new_tokens=8, **sampling))
    assert openvino.generate(tiny).text == openvino.generate(greedy(PROMPTS[0], 8)).text


@pytest.mark.real_model
async def test_a_stream_left_early_stops_generating(openvino):
    stream = openvino.stream(greedy(PROMPTS[6], 200))
    pieces = []
    async for event in stream:
        assert isinstance(event, TextDelta)
        pieces.append(event.text)
        if len(pieces) == 3:
            break
    await stream.aclose()
    for _ in range(200):  # the scheduler drops the row at its next step
        if openvino.scheduler.running == 0:
            break
        await asyncio.sleep(0.05)
    assert openvino.scheduler.running == 0
    produced = openvino.produced_tokens
    await asyncio.sleep(0.3)
    assert openvino.produced_tokens == produced


@pytest.mark.real_model
async def test_a_stream_ends_with_its_usage(openvino, transformers):
    events = [event async for event in openvino.stream(greedy(PROMPTS[0], 24))]
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert "".join(e.text for e in events[:-1]) == transformers.generate(greedy(PROMPTS[0], 24)).text
    assert end.usage.completion_tokens > 0


@pytest.mark.real_model
def test_beyond_the_queue_it_answers_busy(openvino):
    streams = [openvino.stream(greedy(PROMPTS[6], 256)) for _ in range(10)]
    loop = asyncio.new_event_loop()
    scheduler = openvino.scheduler
    try:
        firsts = [loop.create_task(anext(stream)) for stream in streams]
        for _ in range(600):  # until 8 rows run and 2 wait: the batch and the queue are both full
            loop.run_until_complete(asyncio.sleep(0.05))
            if (scheduler.running, scheduler.waiting) == (8, 2):
                break
        assert (scheduler.running, scheduler.waiting) == (8, 2)
        with pytest.raises(QueueFull):
            openvino.generate(greedy("one more"))
    finally:
        for first in firsts:
            first.cancel()
        loop.run_until_complete(asyncio.gather(*firsts, return_exceptions=True))
        for stream in streams:
            loop.run_until_complete(stream.aclose())
        loop.close()


def test_without_the_wheel_auto_falls_back_to_transformers_and_says_why(settings, monkeypatch, tmp_path):
    from llmsite.testing import build_tiny_model

    source = settings.BASE_DIR / "data" / "models" / MODEL
    folder = build_tiny_model(tmp_path / "tiny", source=source)
    settings.MODELS_DIR = tmp_path
    settings.LLM_ENGINE = "auto"
    from inference.providers import openvino as module

    monkeypatch.setattr(module, "import_problem", lambda: "openvino-genai does not import: No module named x")
    provider = registry.build_provider(ProviderSpec("hf", folder.name, "cpu"))
    assert isinstance(provider, HFProvider) and not isinstance(provider, OpenVINOProvider)
    assert provider.engine_note == "openvino-genai does not import: No module named x"

    settings.LLM_ENGINE = "openvino"
    with pytest.raises(ProviderUnavailable, match="LLM_ENGINE=openvino, but openvino-genai does not import"):
        registry.build_provider(ProviderSpec("hf", folder.name, "cpu"))


@pytest.mark.django_db
def test_readiness_and_the_providers_list_name_the_engine_and_why(settings, tmp_path, alice_client, api_client):
    from llmsite.testing import build_tiny_model

    source = settings.BASE_DIR / "data" / "models" / MODEL
    build_tiny_model(tmp_path / "tiny", source=source)
    settings.MODELS_DIR = tmp_path
    settings.LLM_ENGINE = "auto"
    engine = get_engine()
    provider = registry.build_provider(ProviderSpec("hf", "tiny", "cpu"))
    provider.load()
    engine.set(provider)
    try:
        active = alice_client.get("/api/v1/providers").json()["active"]
        assert active["engine"] == "transformers"
        assert "no OpenVINO fp32 export" in active["engine_reason"]
        checks = api_client.get("/readyz").json()["checks"]
        assert "transformers: tiny has no OpenVINO fp32 export" in str(checks)
    finally:
        engine.reset()


# --- readiness: the loop held and failed for real -------------------------------------------------
class HeldPipeline:
    """The real OpenVINO pipeline, whose `step()` first waits for `gate`, and fails once `fail` is set."""

    def __init__(self, pipeline, gate: threading.Event, fail: threading.Event):
        self.pipeline, self.gate, self.fail = pipeline, gate, fail

    def add_request(self, *args):
        return self.pipeline.add_request(*args)

    def step(self):
        self.gate.wait()
        if self.fail.is_set():
            raise RuntimeError("the pipeline failed")
        self.pipeline.step()


@pytest.mark.real_model
def test_an_engine_that_stops_stepping_is_not_ready_and_one_whose_pipeline_failed_has_stopped(folder, settings):
    settings.READINESS_STALL_SECONDS = 1.0
    provider = OpenVINOProvider(MODEL, folder)
    provider.load()
    gate, fail = threading.Event(), threading.Event()
    provider.scheduler.close()
    provider.scheduler = OpenVINOScheduler(
        HeldPipeline(provider.pipeline, gate, fail),
        eos_token_ids=provider._eos_ids(),
        limits=provider.limits,
        name=MODEL,
    )
    get_engine().set(provider)
    try:
        assert health.provider_check()[0]
        finished, outcome = start(provider, greedy(PROMPTS[0], 8))
        ok, detail = wait_for(lambda: (r := health.provider_check()) and not r[0] and r, "readiness to fail")
        assert f"the engine of {MODEL} is stuck: no step completed for" in detail and "1 running" in detail, detail
        gate.set()
        assert finished.wait(60) and isinstance(outcome[0], Completion)
        assert health.provider_check()[0]

        fail.set()
        with pytest.raises(ProviderUnavailable, match="the pipeline failed"):
            provider.generate(greedy(PROMPTS[0], 8))
        ok, detail = health.provider_check()
        assert not ok and f"the engine thread of {MODEL} has stopped: RuntimeError: the pipeline failed" in detail
        with pytest.raises(ProviderUnavailable, match=f"the engine thread of {MODEL} stopped"):
            provider.generate(greedy(PROMPTS[0], 8))
    finally:
        gate.set()
        get_engine().reset()
        provider.close()
