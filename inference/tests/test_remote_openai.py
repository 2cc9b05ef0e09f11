"""OpenAIProvider (OpenAI, Azure, compatible servers) against a fake Chat Completions API over real HTTP."""

from __future__ import annotations

import pytest

from inference.providers.base import GenerationRequest, Message, ProviderUnavailable, StreamEnd, TextDelta, Usage
from inference.providers.openai import OpenAIProvider
from inference.providers.remote import UpstreamError
from inference.tests.fake_upstream import FAST, OPENAI_KEY, fixture, json_reply, openai_sse, sse_reply


def chat(**params) -> GenerationRequest:
    messages = [Message("system", "Be brief."), Message("user", "Say hello.")]
    return GenerationRequest.from_messages(messages, **params)


async def collect(provider, request):
    events = [event async for event in provider.stream(request)]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events[-1]


async def test_it_streams_a_recorded_chat_completions_stream_with_the_usage_chunk(gpt, upstream):
    upstream.script("POST", "/v1/chat/completions", sse_reply(fixture("openai_stream.sse")))
    text, end = await collect(gpt, chat())
    assert text == "Hello, wörld — ünïcode ✓."
    assert isinstance(end, StreamEnd)
    assert end.usage == Usage(19, 8)
    assert end.finish_reason == "stop"


async def test_it_sends_a_bearer_key_the_system_message_and_asks_for_usage(gpt, upstream):
    upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Hi"])))
    await collect(gpt, chat(max_new_tokens=40, temperature=0.7, top_p=0.9, stop=["END"], seed=7))
    [seen] = upstream.seen
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert seen.query == {}
    assert seen.body == {
        "model": "gpt-test",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
        "max_tokens": 40,
        "temperature": 0.7,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_generate_returns_the_whole_completion(gpt, upstream):
    upstream.script("POST", "/v1/chat/completions", sse_reply(fixture("openai_stream.sse"), split_every=5))
    completion = gpt.generate(GenerationRequest(prompt="Say hello."))
    assert completion.text == "Hello, wörld — ünïcode ✓."
    assert completion.usage == Usage(19, 8)
    assert upstream.seen[0].body["messages"] == [{"role": "user", "content": "Say hello."}]


@pytest.mark.parametrize(
    ("finish_reason", "expected"),
    [("stop", "stop"), ("length", "length"), ("content_filter", "content_filter")],
)
async def test_it_maps_finish_reasons(gpt, upstream, finish_reason, expected):
    upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["a", "b"], finish_reason=finish_reason)))
    _, end = await collect(gpt, chat())
    assert end.finish_reason == expected
    assert end.usage == Usage(9, 2)


async def test_a_server_without_usage_chunks_gets_an_estimate_of_one_token_per_chunk(gpt, upstream):
    upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["a", "b", "c"], usage=None)))
    text, end = await collect(gpt, chat())
    assert (text, end.usage) == ("abc", Usage(0, 3))


async def test_an_in_band_error_mid_stream_ends_in_an_error_after_the_text(gpt, upstream):
    upstream.script("POST", "/v1/chat/completions", sse_reply(fixture("openai_error_midstream.sse")))
    received = []
    with pytest.raises(UpstreamError) as caught:
        async for event in gpt.stream(chat()):
            received.append(event)
    assert [e.text for e in received] == ["Hello"]
    assert caught.value.status == 502
    assert "server_error: The server had an error" in caught.value.message
    assert len(upstream.seen) == 1


async def test_a_stream_cut_before_done_is_an_error(gpt, upstream):
    upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Hel", "lo"], done=False), chunked=False))
    with pytest.raises(UpstreamError) as caught:
        await collect(gpt, chat())
    assert "ended before data: [DONE]" in caught.value.message


async def test_bad_json_in_a_chunk_is_an_error_not_text(gpt, upstream):
    upstream.script("POST", "/v1/chat/completions", sse_reply(b'data: {"choices": [{"delta": {"content": "Hi"}\n\n'))
    with pytest.raises(UpstreamError) as caught:
        await collect(gpt, chat())
    assert caught.value.code == "upstream_bad_response"
    assert len(upstream.seen) == 1  # a server that sends garbage would send it again


def test_it_lists_the_models_of_a_compatible_server(gpt, upstream):
    body = {
        "object": "list",
        "data": [
            {"id": "llama3.2", "object": "model", "created": 1, "owned_by": "library"},
            {"id": "qwen2.5:0.5b", "object": "model", "created": 1, "owned_by": "library"},
        ],
    }
    upstream.script("GET", "/v1/models", json_reply(200, body))
    assert [(m.name, m.detail) for m in gpt.models()] == [("llama3.2", "library"), ("qwen2.5:0.5b", "library")]
    assert upstream.seen[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"


async def test_a_self_hosted_server_needs_no_key_and_gets_no_authorization_header(upstream):
    provider = OpenAIProvider("llama3.2", base_url=f"{upstream.url}/v1", http=FAST)
    provider.load()
    upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["ok"])))
    try:
        text, _ = await collect(provider, chat())
    finally:
        provider.close()
    assert text == "ok"
    assert "authorization" not in upstream.seen[0].headers


def test_openai_itself_refuses_to_load_without_a_key():
    provider = OpenAIProvider("gpt-4o-mini", base_url="https://api.openai.com/v1")
    with pytest.raises(ProviderUnavailable, match="no API key"):
        provider.load()


async def test_azure_mode_puts_the_deployment_in_the_path_the_version_in_the_query_and_the_key_in_api_key(upstream):
    provider = OpenAIProvider(
        "my deployment", base_url=upstream.url, api_key=OPENAI_KEY, azure_api_version="2024-10-21", http=FAST
    )
    provider.load()
    upstream.script("POST", "/openai/deployments/my%20deployment/chat/completions", sse_reply(openai_sse(["ok"])))
    try:
        text, _ = await collect(provider, chat())
    finally:
        provider.close()
    [seen] = upstream.seen
    assert text == "ok"
    assert seen.query == {"api-version": ["2024-10-21"]}
    assert seen.headers["api-key"] == OPENAI_KEY
    assert "authorization" not in seen.headers
    assert provider.models()[0].name == "my deployment"  # Azure lists base models, not deployments: none asked


def test_azure_refuses_to_load_without_a_key(upstream):
    provider = OpenAIProvider("dep", base_url=upstream.url, azure_api_version="2024-10-21")
    with pytest.raises(ProviderUnavailable, match="no API key"):
        provider.load()
