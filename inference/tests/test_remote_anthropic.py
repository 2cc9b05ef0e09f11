"""AnthropicProvider against a fake Messages API speaking the real wire format over real HTTP."""

from __future__ import annotations

import pytest

from inference.providers.anthropic import API_VERSION
from inference.providers.base import GenerationRequest, Message, SamplingParams, StreamEnd, TextDelta, Usage
from inference.providers.remote import UpstreamError
from inference.tests.fake_upstream import ANTHROPIC_KEY, anthropic_sse, fixture, json_reply, sse_reply

PATH = "/v1/messages"


def chat(**params) -> GenerationRequest:
    messages = [Message("system", "Be brief."), Message("user", "Say hello.")]
    return GenerationRequest.from_messages(messages, **params)


async def collect(provider, request):
    events = [event async for event in provider.stream(request)]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events[-1], events


async def test_it_streams_a_recorded_messages_stream_with_the_upstream_usage(claude, upstream):
    upstream.script("POST", PATH, sse_reply(fixture("anthropic_stream.sse")))
    text, end, events = await collect(claude, chat())
    assert text == "Hello, wörld — ünïcode ✓."
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", ", wörld", " — ünïcode ✓."]
    assert isinstance(end, StreamEnd)
    # input from message_start; output from message_delta, which is cumulative: assigned, not added to the 1
    assert end.usage == Usage(25, 15)
    assert end.finish_reason == "stop"
    assert end.ttft is not None


async def test_it_sends_the_messages_request_with_the_system_prompt_apart(claude, upstream):
    upstream.script("POST", PATH, sse_reply(anthropic_sse(["Hi"])))
    await collect(claude, chat(max_new_tokens=40, temperature=0.7, top_p=0.9, stop=["\n\n", "END"]))
    [seen] = upstream.seen
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY
    assert seen.headers["anthropic-version"] == API_VERSION == "2023-06-01"
    assert "authorization" not in seen.headers
    assert seen.body == {
        "model": "claude-test",
        "max_tokens": 40,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello."}],
        "temperature": 0.7,
        "top_p": 0.9,
        "stop_sequences": ["\n\n", "END"],
        "stream": True,
    }


async def test_a_plain_prompt_is_one_user_message_and_greedy_sends_temperature_zero(claude, upstream):
    upstream.script("POST", PATH, sse_reply(anthropic_sse(["Hi"])))
    await collect(claude, GenerationRequest(prompt="Hello?", sampling=SamplingParams(max_new_tokens=5)))
    body = upstream.seen[0].body
    assert body["messages"] == [{"role": "user", "content": "Hello?"}]
    assert body["temperature"] == 0
    assert "system" not in body and "top_p" not in body and "stop_sequences" not in body


def test_generate_returns_the_whole_completion(claude, upstream):
    upstream.script("POST", PATH, sse_reply(fixture("anthropic_stream.sse")))
    completion = claude.generate(chat())
    assert completion.text == "Hello, wörld — ünïcode ✓."
    assert completion.usage == Usage(25, 15)
    assert completion.finish_reason == "stop"


async def test_it_reads_events_split_anywhere_across_chunks(claude, upstream):
    # 7-byte pieces cut lines, JSON and multi-byte characters in the middle.
    upstream.script("POST", PATH, sse_reply(fixture("anthropic_stream.sse"), split_every=7))
    text, end, _ = await collect(claude, chat())
    assert text == "Hello, wörld — ünïcode ✓."
    assert end.usage == Usage(25, 15)


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "refusal"),  # passed on: the model declined
    ],
)
async def test_it_maps_stop_reasons(claude, upstream, stop_reason, expected):
    upstream.script("POST", PATH, sse_reply(anthropic_sse(["a", "b"], stop_reason=stop_reason, output_tokens=2)))
    _, end, _ = await collect(claude, chat())
    assert end.finish_reason == expected
    assert end.usage == Usage(12, 2)


async def test_an_error_event_mid_stream_ends_in_an_error_after_the_text_and_is_not_retried(claude, upstream):
    upstream.script(
        "POST", PATH, sse_reply(fixture("anthropic_error_midstream.sse")), sse_reply(anthropic_sse(["never"]))
    )
    received = []
    with pytest.raises(UpstreamError) as caught:
        async for event in claude.stream(chat()):
            received.append(event)
    assert [e.text for e in received] == ["Hello"]
    assert caught.value.status == 503
    assert "overloaded_error: Overloaded" in caught.value.message
    assert len(upstream.seen) == 1  # the client saw text: a retry would repeat it


async def test_an_error_event_before_any_text_is_retried(claude, upstream):
    overloaded = (
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":3,"output_tokens":1}}}'
        b'\n\nevent: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'
    )
    upstream.script("POST", PATH, sse_reply(overloaded), sse_reply(anthropic_sse(["fine"])))
    text, _, _ = await collect(claude, chat())
    assert text == "fine"
    assert len(upstream.seen) == 2


async def test_a_stream_that_ends_without_message_stop_is_an_error_not_a_success(claude, upstream):
    # A complete HTTP body, but the stream stops after the text: never a silent success.
    upstream.script("POST", PATH, sse_reply(anthropic_sse(["Hel", "lo"], end=False), chunked=False))
    with pytest.raises(UpstreamError) as caught:
        await collect(claude, chat())
    assert "ended before message_stop" in caught.value.message
    assert caught.value.status == 502


def test_an_unknown_model_is_a_permanent_error_that_names_it(claude, upstream):
    body = {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-test"}}
    upstream.script("POST", PATH, json_reply(404, body))
    with pytest.raises(UpstreamError) as caught:
        claude.generate(chat())
    error = caught.value
    assert (error.status, error.code, error.permanent) == (502, "upstream_not_found", True)
    assert "'claude-test'" in error.message and "not_found_error: model: claude-test" in error.message
    assert len(upstream.seen) == 1


def test_a_prompt_the_upstream_refuses_is_a_400_with_its_reason(claude, upstream):
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 205351 tokens"}}
    upstream.script("POST", PATH, json_reply(400, body))
    with pytest.raises(UpstreamError) as caught:
        claude.generate(chat())
    assert caught.value.status == 400
    assert "prompt is too long" in caught.value.message


def test_it_lists_the_models(claude, upstream):
    models = {
        "data": [
            {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5"},
            {"type": "model", "id": "claude-haiku-4-5", "display_name": "Claude Haiku 4.5"},
        ],
        "has_more": False,
    }
    upstream.script("GET", "/v1/models", json_reply(200, models))
    assert [m.name for m in claude.models()] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert upstream.seen[0].headers["x-api-key"] == ANTHROPIC_KEY
