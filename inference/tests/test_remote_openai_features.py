"""OpenAIProvider: structured output, tools and logprobs pass through to a fake Chat Completions API, and
what comes back is read (tool call pieces, logprobs, refusals) and checked against what was asked."""

from __future__ import annotations

import json

import pytest

from inference.providers.base import (
    GenerationRequest,
    InvalidParameter,
    Message,
    StreamEnd,
    TextDelta,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from inference.providers.constraints import ResponseFormat
from inference.providers.openai import OpenAIProvider
from inference.providers.remote import HttpOptions, UpstreamError
from inference.providers.replicas import ReplicaProvider
from inference.tests.fake_upstream import FAST, openai_sse, sse_reply

PATH = "/v1/chat/completions"
WEATHER = Tool(
    "get_weather",
    "The weather in a city now.",
    '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}',
    strict=True,
)
TIME = Tool("get_time", parameters='{"type":"object","properties":{}}')
PERSON = ResponseFormat.parse(
    {
        "type": "json_schema",
        "json_schema": {
            "name": "person",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name", "age"],
                "additionalProperties": False,
            },
        },
    }
)


def ask(content: str = "Weather in Paris?", **fields) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", content),), **fields)


async def events_of(provider, request):
    return [event async for event in provider.stream(request)]


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# --- what is sent ---------------------------------------------------------------------------------


async def test_it_passes_tools_tool_results_response_format_and_logprobs_through(gpt, upstream):
    upstream.script("POST", PATH, sse_reply(openai_sse(["{}"], logprobs=[[("{}", -0.5, [])]])))
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    request = GenerationRequest(
        messages=(
            Message("user", "Weather in Paris?"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "18 °C, sunny", tool_call_id="call_1"),
        ),
        tools=(WEATHER, TIME),
        tool_choice="function:get_weather",
        parallel_tool_calls=False,
        response_format=ResponseFormat.parse({"type": "json_object"}),
        logprobs=3,
    )
    gpt.check_features(request)  # the base refuses tools and logprobs: this provider serves them
    await events_of(gpt, request)
    body = upstream.seen[0].body
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "18 °C, sunny", "tool_call_id": "call_1"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city now.",
                "parameters": json.loads(WEATHER.parameters),
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {"type": "json_object"}
    assert (body["logprobs"], body["top_logprobs"]) == (True, 3)


async def test_a_json_schema_goes_as_openai_takes_it_and_defaults_stay_unsaid(gpt, upstream):
    answer = '{"name": "Ada", "age": 36}'
    upstream.script("POST", PATH, sse_reply(openai_sse([answer], logprobs=[[(answer, -0.5, [])]])))
    await events_of(gpt, ask(response_format=PERSON, tools=(TIME,), logprobs=0))
    body = upstream.seen[0].body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": json.loads(PERSON.schema), "strict": True},
    }
    # auto and parallel calls are the API's defaults; compatible servers know fewer fields than OpenAI
    assert "tool_choice" not in body and "parallel_tool_calls" not in body
    assert body["logprobs"] is True and "top_logprobs" not in body


def test_a_tool_result_must_name_its_call(gpt):
    request = GenerationRequest(messages=(Message("user", "hi"), Message("tool", "18 °C")))
    with pytest.raises(InvalidParameter) as caught:
        gpt.check_features(request)
    assert caught.value.field == "messages.1.tool_call_id"


def test_tool_calls_and_the_calls_results_answer_are_part_of_the_rendered_input(gpt):
    # The render is what the response cache hashes: two histories that differ only there must not share answers.
    def history(arguments: str, answered: str) -> GenerationRequest:
        call = ToolCall("call_1", "get_weather", arguments)
        return GenerationRequest(
            messages=(
                Message("user", "Weather?"),
                Message("assistant", "", tool_calls=(call,)),
                Message("tool", "18 °C", tool_call_id=answered),
            )
        )

    renders = {gpt.render(history(a, b)) for a, b in [('{"city":"Oslo"}', "call_1"), ('{"city":"Rome"}', "call_1")]}
    renders.add(gpt.render(history('{"city":"Oslo"}', "call_2")))
    assert len(renders) == 3
    assert gpt.render(ask("Hi")) == '[["user", "Hi"]]'  # plain turns render as they always did


def test_replicas_serve_what_their_api_serves(upstream):
    replica = OpenAIProvider("gpt-test", base_url=f"{upstream.url}/v1", http=FAST)
    provider = ReplicaProvider("gpt-test", [(replica, f"{upstream.url}/v1")], background_probes=False)
    provider.check_features(ask(tools=(WEATHER,), logprobs=2, response_format=PERSON))


# --- tool calls back --------------------------------------------------------------------------------


async def test_streamed_tool_call_pieces_become_tool_call_deltas_and_the_end_carries_the_calls(gpt, upstream):
    calls = [("call_a", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}']), ("call_b", "get_time", ["{}"])]
    upstream.script("POST", PATH, sse_reply(openai_sse([], tool_calls=calls)))
    events = await events_of(gpt, ask(tools=(WEATHER, TIME)))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas == [
        ToolCallDelta(0, "", "call_a", "get_weather"),
        ToolCallDelta(0, '{"ci'),
        ToolCallDelta(0, 'ty": "Pa'),
        ToolCallDelta(0, 'ris"}'),
        ToolCallDelta(1, "", "call_b", "get_time"),
        ToolCallDelta(1, "{}"),
    ]
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.finish_reason == "tool_calls"
    assert end.tool_calls == (
        ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_b", "get_time", "{}"),
    )
    assert end.usage == Usage(9, 2)
    assert end.ttft is not None


def test_generate_returns_the_text_before_the_calls_and_the_calls(gpt, upstream):
    calls = [("call_a", "get_weather", ['{"city": ', '"Paris"}'])]
    stream = openai_sse(["Let me ", "check."], tool_calls=calls)
    upstream.script("POST", PATH, sse_reply(stream, split_every=7))  # pieces cut lines and JSON anywhere
    completion = gpt.generate(ask(tools=(WEATHER,)))
    assert completion.text == "Let me check."
    assert completion.tool_calls == (ToolCall("call_a", "get_weather", '{"city": "Paris"}'),)
    assert completion.finish_reason == "tool_calls"
    assert completion.logprobs is None


async def test_a_named_function_answered_with_finish_stop_is_still_tool_calls(gpt, upstream):
    # OpenAI says "stop" when tool_choice named the function; Ollama says it for every call.
    calls = [("call_a", "get_weather", ['{"city": "Oslo"}'])]
    upstream.script("POST", PATH, sse_reply(openai_sse([], tool_calls=calls, finish_reason="stop")))
    events = await events_of(gpt, ask(tools=(WEATHER,), tool_choice="function:get_weather"))
    assert events[-1].finish_reason == "tool_calls"
    assert events[-1].tool_calls == (ToolCall("call_a", "get_weather", '{"city": "Oslo"}'),)


async def test_calls_sent_whole_at_index_zero_with_their_own_ids_are_two_calls(gpt, upstream):
    # Some compatible servers send each call in one piece, every one at index 0, and some give no id.
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "llama3.2"}
    pieces = [
        {"index": 0, "id": "call_x", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        {
            "index": 0,
            "id": "call_y",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        },
    ]
    chunks = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [piece]}, "finish_reason": None}],
        }
        for piece in pieces
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
    upstream.script("POST", PATH, sse_reply(body.encode()))
    events = await events_of(gpt, ask(tools=(WEATHER, TIME)))
    # get_time came without arguments: "{}" is its arguments, sent as one more piece
    assert [e for e in events if isinstance(e, ToolCallDelta)][-1] == ToolCallDelta(0, "{}")
    assert events[-1].tool_calls == (
        ToolCall("call_x", "get_time", "{}"),
        ToolCall("call_y", "get_weather", '{"city":"Rome"}'),
    )
    assert events[-1].finish_reason == "tool_calls"


async def test_a_stream_cut_after_a_tool_call_piece_is_not_retried(gpt, upstream):
    calls = [("call_a", "get_weather", ['{"city": "Paris"}'])]
    cut = sse_reply(openai_sse([], tool_calls=calls, done=False), chunked=False)
    upstream.script("POST", PATH, cut, sse_reply(openai_sse(["never"])))
    with pytest.raises(UpstreamError):
        await events_of(gpt, ask(tools=(WEATHER,)))
    assert len(upstream.seen) == 1  # the client saw the call begin: a retry would repeat it


async def test_a_replica_cut_after_a_tool_call_piece_hands_nothing_over_to_another(upstream):
    calls = [("call_a", "get_weather", ['{"city": "Paris"}'])]
    upstream.script("POST", "/a/chat/completions", sse_reply(openai_sse([], tool_calls=calls, done=False), cut=True))
    upstream.script("POST", "/b/chat/completions", sse_reply(openai_sse(["never"])))
    once = HttpOptions(connect_timeout=2, read_timeout=5, max_retries=0)
    replicas = [
        (OpenAIProvider("gpt-test", base_url=f"{upstream.url}/{n}", http=once), f"{upstream.url}/{n}") for n in "ab"
    ]
    provider = ReplicaProvider("gpt-test", replicas, background_probes=False)  # a idle, first in turn: it answers
    provider.load()
    try:
        with pytest.raises(UpstreamError):
            await events_of(provider, ask(tools=(WEATHER,)))
    finally:
        provider.close()
    assert [seen.path for seen in upstream.seen] == ["/a/chat/completions"]


@pytest.mark.parametrize(
    ("calls", "tool_choice", "problem"),
    [
        ([("c", "get_weather", ['{"city": "Par'])], "auto", "arguments that are not a JSON object"),
        ([("c", "get_weather", ['["Paris"]'])], "auto", "arguments that are not a JSON object"),
        ([("c", "launch_rocket", ["{}"])], "auto", "'launch_rocket', which the request did not let it call"),
        ([("c", "get_time", ["{}"])], "none", "'get_time', which the request did not let it call"),
        ([("c", "get_time", ["{}"])], "function:get_weather", "though the request named 'get_weather'"),
        # strict tools: the arguments must fit the parameters' schema
        ([("c", "get_weather", ['{"town": "Paris"}'])], "auto", "does not fit its schema at the top level"),
        ([("c", "get_weather", ['{"city": 7}'])], "auto", "does not fit its schema at city"),
    ],
)
async def test_tool_calls_that_break_the_request_are_a_502_that_says_what_was_wrong(
    gpt, upstream, calls, tool_choice, problem
):
    upstream.script("POST", PATH, sse_reply(openai_sse([], tool_calls=calls)))
    with pytest.raises(UpstreamError) as caught:
        await events_of(gpt, ask(tools=(WEATHER, TIME), tool_choice=tool_choice))
    assert caught.value.status == 502
    assert caught.value.code == "upstream_bad_response"
    assert problem in caught.value.message
    assert caught.value.message.startswith(f"openai at {gpt.host}")
    assert len(upstream.seen) == 1  # the model's answer, not the connection: asking again is the client's call


# --- structured output back -------------------------------------------------------------------------


async def test_a_json_schema_answer_that_fits_comes_back_as_it_was_streamed(gpt, upstream):
    upstream.script("POST", PATH, sse_reply(openai_sse(['{"name": ', '"Ada", "age": 36}'])))
    events = await events_of(gpt, ask(response_format=PERSON))
    assert text_of(events) == '{"name": "Ada", "age": 36}'
    assert events[-1].finish_reason == "stop"


@pytest.mark.parametrize(
    ("texts", "problem"),
    [
        (['{"name": "Ada"'], "text that is not JSON"),
        (["Sure! Here it is."], "text that is not JSON"),
        (['{"name": "Ada"}'], "does not fit its schema at the top level: 'age' is a required property"),
        (['{"name": "Ada", "age": "old"}'], "does not fit its schema at age"),
    ],
)
async def test_a_json_schema_answer_that_does_not_fit_ends_the_stream_in_a_502(gpt, upstream, texts, problem):
    upstream.script("POST", PATH, sse_reply(openai_sse(texts)))
    received = []
    with pytest.raises(UpstreamError) as caught:
        async for event in gpt.stream(ask(response_format=PERSON)):
            received.append(event)
    assert text_of(received) == "".join(texts)  # streamed as it came; the end is the error, not a StreamEnd
    assert not any(isinstance(e, StreamEnd) for e in received)
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")
    assert problem in caught.value.message


def test_generate_refuses_json_that_is_not_an_object_for_json_object(gpt, upstream):
    upstream.script("POST", PATH, sse_reply(openai_sse(["[1, 2]"])))
    with pytest.raises(UpstreamError, match="JSON that is not an object"):
        gpt.generate(ask(response_format=ResponseFormat.parse({"type": "json_object"})))


async def test_json_cut_short_by_the_token_limit_is_passed_on_with_finish_length(gpt, upstream):
    upstream.script("POST", PATH, sse_reply(openai_sse(['{"name": "Ad'], finish_reason="length")))
    events = await events_of(gpt, ask(response_format=PERSON))
    assert (text_of(events), events[-1].finish_reason) == ('{"name": "Ad', "length")


async def test_a_declined_structured_answer_is_a_refusal_with_its_reason(gpt, upstream):
    upstream.script("POST", PATH, sse_reply(openai_sse([], refusal=["I can't help ", "with that."])))
    events = await events_of(gpt, ask(response_format=PERSON))
    assert text_of(events) == "I can't help with that."
    assert events[-1].finish_reason == "refusal"


# --- logprobs back ----------------------------------------------------------------------------------


async def test_each_chunks_logprobs_come_with_its_text(gpt, upstream):
    logprobs = [
        [("Hel", -0.25, [("Hel", -0.25), ("Hi", -1.5)]), ("lo", -0.01, [("lo", -0.01), ("p", -4.75)])],
        [("!", -0.5, [("!", -0.5), (".", -1.0)])],
    ]
    upstream.script("POST", PATH, sse_reply(openai_sse(["Hello", "!"], logprobs=logprobs)))
    events = await events_of(gpt, ask(logprobs=2))
    texts = [e for e in events if isinstance(e, TextDelta)]
    assert texts == [
        TextDelta(
            "Hello",
            (
                TokenLogprob("Hel", -0.25, (("Hel", -0.25), ("Hi", -1.5))),
                TokenLogprob("lo", -0.01, (("lo", -0.01), ("p", -4.75))),
            ),
        ),
        TextDelta("!", (TokenLogprob("!", -0.5, (("!", -0.5), (".", -1.0))),)),
    ]


def test_generate_returns_every_tokens_logprob(gpt, upstream):
    logprobs = [[("Hi", -0.125, [])], [("!", -2.0, [])]]
    upstream.script("POST", PATH, sse_reply(openai_sse(["Hi", "!"], logprobs=logprobs)))
    completion = gpt.generate(ask(logprobs=0))
    assert completion.text == "Hi!"
    assert completion.logprobs == (TokenLogprob("Hi", -0.125), TokenLogprob("!", -2.0))


async def test_a_server_that_ignores_logprobs_is_a_502_not_an_answer_without_them(gpt, upstream):
    upstream.script("POST", PATH, sse_reply(openai_sse(["Hi"])))
    with pytest.raises(UpstreamError) as caught:
        await events_of(gpt, ask(logprobs=1))
    assert caught.value.status == 502
    assert "sent no logprobs, though the request asked for them" in caught.value.message
