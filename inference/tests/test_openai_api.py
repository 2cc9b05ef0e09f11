"""The /v1/ API driven by the official `openai` package, unmodified, against a live daphne."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import openai
import pytest

from inference.providers.base import GenerationRequest, Message, SamplingParams
from llmsite.testing import start_live_server

pytestmark = [pytest.mark.live_server, pytest.mark.django_db]

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_models_dir):
    """A live llmsite serving tiny-a, with a user and a personal API key."""
    server = start_live_server(
        tmp_path_factory.mktemp("openai-site"),
        MODELS_DIR=str(tiny_models_dir),
        LLM_MODEL="tiny-a",
        DEVICE="cpu",
    )
    server.api_key = server.create_api_key()
    yield server
    server.stop()


@pytest.fixture
def client(site):
    return openai.OpenAI(base_url=f"{site.url}/v1", api_key=site.api_key, max_retries=0, timeout=60)


def greedy(tiny_provider, max_new_tokens: int) -> str:
    messages = tuple(Message(m["role"], m["content"]) for m in MESSAGES)
    return tiny_provider.generate(
        GenerationRequest(messages=messages, sampling=SamplingParams(max_new_tokens=max_new_tokens))
    ).text


def test_a_chat_completion_has_openais_shape_and_the_greedy_answer(client, tiny_provider):
    completion = client.chat.completions.create(model="tiny-a", messages=MESSAGES, max_tokens=8, temperature=0)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "tiny-a"
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == greedy(tiny_provider, 8)
    assert choice.finish_reason == "length"
    assert completion.usage.completion_tokens == 8
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 8


def test_a_streamed_chat_completion_sends_chunks_then_usage_then_done(client, tiny_provider):
    stream = client.chat.completions.create(
        model="tiny-a",
        messages=MESSAGES,
        max_completion_tokens=9,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([piece for piece in content if piece]) > 1
    assert "".join(content) == greedy(tiny_provider, 9)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    *body, last = chunks
    assert last.choices == [] and last.usage.completion_tokens == 9
    assert all(c.usage is None for c in body)


def test_embeddings_equal_the_native_encode_endpoint(client, site):
    texts = ["The cat sat on the mat.", "Invoices are paid monthly."]
    as_base64 = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # the SDK asks for base64
    as_float = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts[0], encoding_format="float")
    native = httpx.post(
        f"{site.url}/api/v1/embed/encode", json={"texts": texts}, headers={"Authorization": f"Bearer {site.api_key}"}
    ).json()["embeddings"]
    assert [row.index for row in as_base64.data] == [0, 1]
    assert np.allclose([row.embedding for row in as_base64.data], native, atol=1e-6)
    assert np.allclose(as_float.data[0].embedding, native[0], atol=1e-6)
    assert as_base64.usage.prompt_tokens > 0


def test_models_lists_what_the_server_can_serve(client):
    ids = [model.id for model in client.models.list()]
    assert ids[0] == "tiny-a"  # the active model first
    assert {"tiny-b", "all-MiniLM-L6-v2"} <= set(ids)
    assert client.models.retrieve("tiny-b").owned_by == "llmsite"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nonexistent")


def test_errors_are_the_exceptions_openai_clients_expect(client, site):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{site.url}/v1", api_key="llms_000000000000_wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-nonexistent", messages=MESSAGES)
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as several:
        client.chat.completions.create(model="tiny-a", messages=MESSAGES, n=9)
    assert several.value.body["param"] == "n"
    with pytest.raises(openai.NotFoundError) as escaping:
        client.chat.completions.create(model="../tiny-a", messages=MESSAGES)
    assert escaping.value.body["param"] == "model"


async def test_llmsites_openai_provider_talks_to_another_llmsite(site, tiny_provider):
    """Interop: one llmsite's OpenAIProvider, pointed at a second llmsite's /v1/, generates and streams."""
    from inference.providers.base import StreamEnd, TextDelta
    from inference.providers.openai import OpenAIProvider

    provider = OpenAIProvider("tiny-a", base_url=f"{site.url}/v1", api_key=site.api_key)
    provider.load()
    try:
        names = [m.name for m in provider.models()]
        assert "tiny-a" in names
        messages = tuple(Message(m["role"], m["content"]) for m in MESSAGES)
        request = GenerationRequest(messages=messages, sampling=SamplingParams(max_new_tokens=7))
        completion = await asyncio.to_thread(provider.generate, request)
        assert completion.text == greedy(tiny_provider, 7)
        assert (completion.finish_reason, completion.usage.completion_tokens) == ("length", 7)
        events = [
            event
            async for event in provider.stream(
                GenerationRequest(messages=messages, sampling=SamplingParams(max_new_tokens=5))
            )
        ]
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == greedy(tiny_provider, 5)
        assert isinstance(events[-1], StreamEnd) and events[-1].usage.completion_tokens == 5
    finally:
        provider.close()
