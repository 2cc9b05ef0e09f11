"""/v1/completions, log-probabilities and n > 1 against a live site serving the real SmolLM2 (its default
engine), driven by the official `openai` package; the expected log-probabilities are computed here, in this
process, with transformers on the same weights."""

from __future__ import annotations

import math

import httpx
import openai
import pytest
import torch

from llmsite.testing import start_live_server

pytestmark = [pytest.mark.live_server, pytest.mark.django_db, pytest.mark.real_model]

MODEL = "SmolLM2-135M-Instruct"
PROMPT = "The capital of France is Paris. The capital of Italy is"
TOL = 1e-4


@pytest.fixture(scope="module")
def site(tmp_path_factory, smollm2_exported):
    server = start_live_server(
        tmp_path_factory.mktemp("completions-site"), MODELS_DIR=str(smollm2_exported.parent), LLM_MODEL=MODEL
    )
    server.api_key = server.create_api_key()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reference(smollm2_exported):
    """The same weights in this process, with transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_exported)
    model = AutoModelForCausalLM.from_pretrained(smollm2_exported, dtype=torch.float32).eval()
    return tokenizer, model


@pytest.fixture
def client(site):
    return openai.OpenAI(base_url=f"{site.url}/v1", api_key=site.api_key, max_retries=0, timeout=120)


def rows(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)


def greedy_ids(model, ids: list[int], steps: int) -> list[int]:
    new: list[int] = []
    for _ in range(steps):
        new.append(int(rows(model, ids + new)[-1].argmax()))
    return new


def test_echo_with_max_tokens_0_scores_the_prompt_as_the_model_does(client, reference):
    tokenizer, model = reference
    ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    expected = rows(model, ids)
    answer = client.completions.create(model=MODEL, prompt=PROMPT, echo=True, logprobs=1, max_tokens=0)
    choice = answer.choices[0]
    assert answer.object == "text_completion"
    assert choice.text == PROMPT
    logprobs = choice.logprobs
    assert logprobs.tokens == [tokenizer.decode([i]) for i in ids]
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    for position in range(1, len(ids)):
        assert math.isclose(
            logprobs.token_logprobs[position], float(expected[position - 1][ids[position]]), abs_tol=TOL
        )
        ((best, best_lp),) = logprobs.top_logprobs[position].items()
        assert best == tokenizer.decode([int(expected[position - 1].argmax())])
        assert math.isclose(best_lp, float(expected[position - 1].max()), abs_tol=TOL)
    assert logprobs.text_offset[:3] == [0, len(logprobs.tokens[0]), len(logprobs.tokens[0]) + len(logprobs.tokens[1])]
    assert answer.usage.prompt_tokens == len(ids) and answer.usage.completion_tokens == 0


def test_echo_with_generated_tokens_scores_prompt_and_answer(client, reference):
    tokenizer, model = reference
    ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    new = greedy_ids(model, ids, 4)
    expected = rows(model, ids + new)
    answer = client.completions.create(model=MODEL, prompt=PROMPT, echo=True, logprobs=2, max_tokens=4, temperature=0)
    choice = answer.choices[0]
    assert choice.text == PROMPT + tokenizer.decode(new)
    assert choice.logprobs.tokens == [tokenizer.decode([i]) for i in ids + new]
    everything = ids + new
    for position in range(1, len(everything)):
        got = choice.logprobs.token_logprobs[position]
        assert math.isclose(got, float(expected[position - 1][everything[position]]), abs_tol=TOL)
        assert len(choice.logprobs.top_logprobs[position]) <= 2
    assert choice.logprobs.text_offset[len(ids)] == len(PROMPT)


def test_chat_logprobs_through_the_sdk_are_the_models_own(client, reference):
    tokenizer, model = reference
    messages = [{"role": "user", "content": "Name a colour."}]
    answer = client.chat.completions.create(
        model=MODEL, messages=messages, logprobs=True, top_logprobs=3, max_tokens=6, temperature=0
    )
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    content = answer.choices[0].logprobs.content
    new = greedy_ids(model, list(ids), len(content))
    expected = rows(model, list(ids) + new)
    for offset, (token, entry) in enumerate(zip(new, content, strict=True)):
        row = expected[len(ids) + offset - 1]
        assert entry.token == tokenizer.decode([token])
        assert entry.bytes == list(entry.token.encode())
        assert math.isclose(entry.logprob, float(row[token]), abs_tol=TOL)
        assert [t.token for t in entry.top_logprobs] == [tokenizer.decode([i]) for i in row.topk(3).indices.tolist()]
    streamed = client.chat.completions.create(
        model=MODEL, messages=messages, logprobs=True, top_logprobs=3, max_tokens=6, temperature=0, stream=True
    )
    tokens = [
        entry.token
        for chunk in streamed
        if chunk.choices and chunk.choices[0].logprobs
        for entry in chunk.choices[0].logprobs.content
    ]
    assert tokens == [e.token for e in content]


def test_n_choices_with_a_seed_differ_and_repeat(client):
    def ask():
        return client.completions.create(
            model=MODEL, prompt="Once upon a time", n=3, seed=7, temperature=1.0, max_tokens=8
        )

    first, again = ask(), ask()
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert len({c.text for c in first.choices}) > 1
    assert first.usage.completion_tokens >= 3  # every choice's tokens are counted
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], n=2, seed=3, temperature=1.0, max_tokens=6
    )
    assert [c.index for c in chat.choices] == [0, 1]


def test_a_stream_of_n_choices_names_each_choice(client):
    chunks = list(
        client.completions.create(
            model=MODEL, prompt="Once upon a time", n=2, seed=1, temperature=1.0, max_tokens=5, stream=True
        )
    )
    indexes = {c.choices[0].index for c in chunks if c.choices}
    assert indexes == {0, 1}
    finished = [c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason]
    assert sorted(finished) == [0, 1]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"logprobs": 6}, "logprobs"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 9}, "n"),
        ({"prompt": ["x"] * 17}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"best_of": 2}, "best_of"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"echo": True, "logprobs": 1, "stream": True}, "echo"),
    ],
)
def test_completions_refuse_what_they_cannot_do_in_openais_shape(site, body, param):
    response = httpx.post(
        f"{site.url}/v1/completions",
        json={"model": MODEL, "prompt": "Hello", **body},
        headers={"Authorization": f"Bearer {site.api_key}"},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
