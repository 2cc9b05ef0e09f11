"""The Hugging Face provider through its own API: templates, stops, seeds, streaming, cancellation."""

import asyncio
import threading

import pytest

from inference.providers.base import (
    GenerationRequest,
    PromptTooLong,
    ProviderUnavailable,
    SamplingParams,
    StreamEnd,
    TextDelta,
)
from inference.providers.hf import HFProvider, resolve_device


def test_it_is_greedy_and_repeatable_at_temperature_zero(tiny_provider):
    request = GenerationRequest(prompt="Hello there", sampling=SamplingParams(max_new_tokens=12))
    first, second = tiny_provider.generate(request), tiny_provider.generate(request)
    assert first.text == second.text
    assert first.usage.completion_tokens == 12
    assert first.finish_reason == "length"


def test_it_repeats_sampling_with_a_seed(tiny_provider):
    def sample(seed):
        return tiny_provider.generate(
            GenerationRequest(
                prompt="Once", sampling=SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.95, seed=seed)
            )
        ).text

    assert sample(7) == sample(7)
    assert len({sample(7), sample(8), sample(9)}) > 1


def test_it_cuts_the_text_at_a_stop_string(tiny_provider):
    full = tiny_provider.generate(GenerationRequest(prompt="Hi", sampling=SamplingParams(max_new_tokens=24))).text
    assert len(full) > 6
    stop = full[4:6]
    cut = tiny_provider.generate(
        GenerationRequest(prompt="Hi", sampling=SamplingParams(max_new_tokens=24, stop=(stop,)))
    )
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop"
    assert cut.usage.completion_tokens < 24


def test_it_uses_the_chat_template_for_messages(tiny_provider):
    request = GenerationRequest.from_messages(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], max_new_tokens=2
    )
    rendered = tiny_provider.render(request)
    assert "<|im_start|>system\nBe brief.<|im_end|>" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")


def test_it_refuses_a_prompt_longer_than_the_context_window(tiny_provider):
    with pytest.raises(PromptTooLong) as caught:
        tiny_provider.generate(GenerationRequest(prompt="word " * 400, sampling=SamplingParams(max_new_tokens=2)))
    assert caught.value.limit == 256
    assert caught.value.tokens > 256


async def test_it_streams_deltas_that_concatenate_to_the_generated_text(tiny_provider):
    request = GenerationRequest(prompt="Stream me", sampling=SamplingParams(max_new_tokens=20))
    events = [event async for event in tiny_provider.stream(request)]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1
    assert isinstance(events[-1], StreamEnd)
    assert events[-1].usage.completion_tokens == 20
    assert "".join(deltas) == tiny_provider.generate(request).text


class HeldAfterFirstText:
    """The provider's next generation, held after its first text until its consumer has left.

    So where the generation stood when its consumer left does not depend on how fast either side
    runs; `returned` is set once the generation has returned (nothing of it runs any more).
    """

    def __init__(self, provider: HFProvider, monkeypatch: pytest.MonkeyPatch):
        self.produced_at_hold: int | None = None  # the provider's token count when the hold began
        self.returned = threading.Event()
        run = provider._run

        def held_run(request, *, emit, cancel):
            def emit_then_hold(text):
                emit(text)
                if self.produced_at_hold is None:
                    self.produced_at_hold = provider.produced_tokens
                    cancel.wait(30)  # a generous bound: the consumer leaves as soon as it has this text

            try:
                return run(request, emit=emit_then_hold, cancel=cancel)
            finally:
                self.returned.set()

        monkeypatch.setattr(provider, "_run", held_run)

    async def stopped(self) -> bool:
        """Whether the generation returned (waited for off the event loop, 30 s at most)."""
        return await asyncio.to_thread(self.returned.wait, 30)


async def test_it_stops_generating_when_the_stream_consumer_leaves(tiny_provider, monkeypatch):
    held = HeldAfterFirstText(tiny_provider, monkeypatch)
    stream = tiny_provider.stream(GenerationRequest(prompt="Go on", sampling=SamplingParams(max_new_tokens=250)))
    async for event in stream:
        assert isinstance(event, TextDelta)
        break
    await stream.aclose()
    assert await held.stopped()
    # It finished the token it was on when its consumer left, and began no other.
    assert tiny_provider.produced_tokens <= held.produced_at_hold + 1


async def test_a_cancelled_task_stops_its_generation(tiny_provider, monkeypatch):
    held = HeldAfterFirstText(tiny_provider, monkeypatch)
    first = asyncio.Event()

    async def consume():
        async for _ in tiny_provider.stream(
            GenerationRequest(prompt="Go on", sampling=SamplingParams(max_new_tokens=250))
        ):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await held.stopped()
    assert tiny_provider.produced_tokens <= held.produced_at_hold + 1


def test_it_names_an_unavailable_device():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ProviderUnavailable, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto") in ("cpu", "mps")


def test_it_refuses_a_folder_without_a_model(tmp_path):
    with pytest.raises(ProviderUnavailable, match=r"config\.json"):
        HFProvider("nothing", tmp_path, device="cpu").load()
