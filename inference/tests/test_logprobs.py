"""Log-probabilities on local engines: generated tokens (batched, one by one, streamed, through a runner) and
the prompt's own tokens (`Provider.score`), all equal to what the model's logits say."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from inference.providers.base import (
    GenerationRequest,
    InvalidParameter,
    SamplingParams,
    StreamEnd,
    TextDelta,
)

MAX_NEW = 12
TOL = 1e-4


def ask(prompt: str, logprobs: int | None = 3, **sampling) -> GenerationRequest:
    sampling.setdefault("max_new_tokens", MAX_NEW)
    return GenerationRequest(prompt=prompt, sampling=SamplingParams(**sampling), logprobs=logprobs)


def direct_logprobs(provider, ids: list[int]) -> torch.Tensor:
    """log_softmax of the model's logits over `ids`, computed here with transformers."""
    with torch.inference_mode():
        logits = provider.hf_model(input_ids=torch.tensor([ids])).logits[0]
    return logits.float().log_softmax(-1)


def greedy_chain(provider, ids: list[int], steps: int) -> list[int]:
    """The tokens greedy decoding picks, computed here with transformers."""
    new: list[int] = []
    for _ in range(steps):
        new.append(int(direct_logprobs(provider, ids + new)[-1].argmax()))
    return new


def assert_entry(provider, got, row, token: int, k: int) -> None:
    assert got.token == provider.tokenizer.decode([token])
    assert math.isclose(got.logprob, float(row[token]), abs_tol=TOL)
    values, top_ids = row.topk(k)
    assert [t for t, _ in got.top] == [provider.tokenizer.decode([i]) for i in top_ids.tolist()]
    assert all(math.isclose(lp, float(v), abs_tol=TOL) for (_, lp), v in zip(got.top, values, strict=True))


def assert_matches_the_model(provider, request: GenerationRequest, completion) -> None:
    """A greedy answer's tokens, logprobs and top alternatives equal the model's own distribution."""
    ids = provider.prepare(request)
    new = greedy_chain(provider, ids, len(completion.logprobs))
    rows = direct_logprobs(provider, ids + new)
    for offset, (token, got) in enumerate(zip(new, completion.logprobs, strict=True)):
        assert_entry(provider, got, rows[len(ids) + offset - 1], token, request.logprobs)


def test_generated_tokens_carry_the_models_own_logprobs_one_by_one(tiny_provider):
    request = ask("Tell me about the sea.")
    completion = tiny_provider.generate(request)
    assert completion.logprobs
    assert_matches_the_model(tiny_provider, request, completion)


def test_batched_and_one_by_one_logprobs_agree(tiny_provider, batched):
    requests = [ask("Tell me about the sea."), ask("Paris", logprobs=5), ask("x", logprobs=0)]
    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(batched.generate, requests))
    for request, answer in zip(requests, together, strict=True):
        alone = tiny_provider.generate(request)
        assert answer.text == alone.text
        assert [e.token for e in answer.logprobs] == [e.token for e in alone.logprobs]
        for a, b in zip(answer.logprobs, alone.logprobs, strict=True):
            assert math.isclose(a.logprob, b.logprob, abs_tol=TOL)
            assert len(a.top) == len(b.top) == request.logprobs
        assert_matches_the_model(tiny_provider, request, answer)


def test_logprobs_are_the_raw_distribution_whatever_the_temperature(batched, tiny_provider):
    request = ask("Tell me about the sea.", temperature=1.7, top_p=0.5, seed=5)
    answer = batched.generate(request)
    alone = tiny_provider.generate(request)
    assert [(e.token, round(e.logprob, 3)) for e in answer.logprobs] == [
        (e.token, round(e.logprob, 3)) for e in alone.logprobs
    ]
    # The first token's distribution is the model's after the prompt, untempered.
    first = direct_logprobs(tiny_provider, tiny_provider.prepare(request))[-1]
    values, _ = first.topk(request.logprobs)
    assert all(
        math.isclose(lp, float(v), abs_tol=TOL) for (_, lp), v in zip(answer.logprobs[0].top, values, strict=True)
    )


def test_without_logprobs_none_are_computed(batched, tiny_provider):
    assert batched.generate(ask("Paris", logprobs=None)).logprobs is None
    assert tiny_provider.generate(ask("Paris", logprobs=None)).logprobs is None


@pytest.mark.parametrize("engine", ["batched", "tiny_provider"])
async def test_each_streamed_delta_carries_the_logprobs_of_its_tokens(engine, request):
    provider = request.getfixturevalue(engine)
    asked = ask("Cats and dogs who live together", stop=["zzz"])
    events = [event async for event in provider.stream(asked)]
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert isinstance(events[-1], StreamEnd)
    assert all(d.logprobs is not None for d in deltas)
    streamed = [entry for d in deltas for entry in d.logprobs]
    assert streamed == list(provider.generate(asked).logprobs)
    assert "".join(e.token for e in streamed).startswith("".join(d.text for d in deltas))


def test_the_prompts_own_tokens_are_scored_and_the_first_has_none(tiny_provider):
    request = GenerationRequest(prompt="The sea is blue and the sky is", raw_prompt=True, logprobs=2)
    ids = tiny_provider.prepare(request)
    assert ids == tiny_provider.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]
    scores = tiny_provider.score(request)
    rows = direct_logprobs(tiny_provider, ids)
    assert len(scores) == len(ids) and scores[0] is None
    for position in range(1, len(ids)):
        assert math.isclose(scores[position].logprob, float(rows[position - 1][ids[position]]), abs_tol=TOL)
        assert len(scores[position].top) == 2


def test_a_raw_prompt_skips_the_chat_template(tiny_provider):
    assert tiny_provider.render(GenerationRequest(prompt="Hi there", raw_prompt=True)) == "Hi there"
    assert tiny_provider.render(GenerationRequest(prompt="Hi there")) != "Hi there"


def test_logprobs_are_bounded():
    with pytest.raises(InvalidParameter):
        GenerationRequest(prompt="x", logprobs=21)
    with pytest.raises(InvalidParameter):
        GenerationRequest(messages=[{"role": "user", "content": "x"}], raw_prompt=True)


def test_a_runner_process_returns_the_same_logprobs_and_scores(tiny_models_dir, tiny_provider):
    from inference.runners.client import RunnerProvider

    from .test_runners import options

    runner = RunnerProvider(options(tiny_models_dir / "tiny-a"))
    runner.load()
    try:
        request = ask("Tell me about the sea.")
        runner.check_features(request)  # local models serve logprobs: no refusal
        there = runner.generate(request)
        scored = runner.score(GenerationRequest(prompt="The sea is blue", raw_prompt=True, logprobs=1))
    finally:
        runner.close()
    here = tiny_provider.generate(request)
    assert there.text == here.text
    assert [e.token for e in there.logprobs] == [e.token for e in here.logprobs]
    assert all(
        math.isclose(a.logprob, b.logprob, abs_tol=TOL) for a, b in zip(there.logprobs, here.logprobs, strict=True)
    )
    expected = tiny_provider.score(GenerationRequest(prompt="The sea is blue", raw_prompt=True, logprobs=1))
    assert scored[0] is None and [s.token for s in scored[1:]] == [s.token for s in expected[1:]]


async def test_a_runner_streams_logprobs_with_its_deltas(tiny_models_dir, tiny_provider):
    from inference.runners.client import RunnerProvider

    from .test_runners import options

    runner = RunnerProvider(options(tiny_models_dir / "tiny-a"))
    runner.load()
    try:
        request = ask("Cats and dogs")
        deltas = [e async for e in runner.stream(request) if isinstance(e, TextDelta)]
    finally:
        runner.close()
    streamed = [entry.token for d in deltas for entry in d.logprobs or ()]
    assert streamed == [e.token for e in tiny_provider.generate(request).logprobs]


@pytest.mark.real_model
def test_openvino_logprobs_and_scores_equal_the_transformers_models(smollm2_exported):
    """The OpenVINO engine's scoring pass against transformers float32 on the same weights."""
    from inference.providers.hf import HFProvider
    from inference.providers.openvino import OpenVINOProvider

    openvino = OpenVINOProvider("SmolLM2-135M-Instruct", smollm2_exported)
    reference = HFProvider("SmolLM2-135M-Instruct", smollm2_exported, device="cpu")
    openvino.load()
    reference.load()
    try:
        request = ask("What is the capital of France?", logprobs=3)
        answer = openvino.generate(request)
        assert_matches_the_model(reference, request, answer)
        prompt = GenerationRequest(prompt="The capital of France is Paris.", raw_prompt=True, logprobs=1)
        mine, theirs = openvino.score(prompt), reference.score(prompt)
        assert mine[0] is None and len(mine) == len(theirs)
        for a, b in zip(mine[1:], theirs[1:], strict=True):
            assert a.token == b.token and math.isclose(a.logprob, b.logprob, abs_tol=TOL)
    finally:
        openvino.close()
        reference.close()


@pytest.fixture(params=[False, True], ids=["one-by-one", "batched"])
def ending_at_once(request, tiny_models_dir):
    """`tiny-a` whose every next token is the end of sequence (a bias on its output layer), on either engine."""
    from inference.providers.hf import HFProvider

    provider = HFProvider("tiny-a", tiny_models_dir / "tiny-a", device="cpu", batching=request.param)
    provider.load()
    head = provider.hf_model.lm_head
    bias = torch.zeros(head.out_features)
    bias[provider.tokenizer.eos_token_id] = 100.0
    head.bias = torch.nn.Parameter(bias, requires_grad=False)
    yield provider
    provider.close()


def test_a_text_completion_reports_the_end_of_sequence_token_and_a_chat_answer_does_not(ending_at_once):
    provider = ending_at_once
    eos = provider.tokenizer.eos_token_id
    text = GenerationRequest(
        prompt="The sea is", raw_prompt=True, logprobs=1, sampling=SamplingParams(max_new_tokens=1)
    )
    completion = provider.generate(text)
    assert completion.text == "" and completion.finish_reason == "stop"
    ids = provider.prepare(text)
    row = direct_logprobs(provider, ids)[-1]
    ((entry),) = completion.logprobs  # what an evaluation harness drops as the generated token
    assert entry.token == provider.tokenizer.eos_token
    assert math.isclose(entry.logprob, float(row[eos]), abs_tol=TOL)
    chat = provider.generate(GenerationRequest(prompt="The sea is", logprobs=1))
    assert chat.finish_reason == "stop" and chat.logprobs == ()
