"""AnthropicProvider: OpenAI's tools, tool results and response_format translated to the Messages API of a fake
upstream, tool_use blocks read back as tool calls, answers checked, and logprobs refused."""

from __future__ import annotations

import json

import pytest

from inference.providers.base import (
    GenerationRequest,
    InvalidParameter,
    Message,
    StreamEnd,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from inference.providers.constraints import ResponseFormat
from inference.providers.remote import UpstreamError
from inference.tests.fake_upstream import anthropic_sse, sse_reply

PATH = "/v1/messages"
WEATHER = Tool(
    "get_weather",
    "The weather in a city now.",
    '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}',
)
TIME = Tool("get_time", parameters='{"type":"object","properties":{}}')
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
PERSON = ResponseFormat.parse({"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}})


def ask(content: str = "Weather in Paris?", **fields) -> GenerationRequest:
    return GenerationRequest(messages=(Message("system", "Be brief."), Message("user", content)), **fields)


async def events_of(provider, request):
    return [event async for event in provider.stream(request)]


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# --- what is sent ---------------------------------------------------------------------------------


async def test_tool_calls_become_tool_use_blocks_and_consecutive_results_one_user_turn(claude, upstream):
    upstream.script("POST", PATH, sse_reply(anthropic_sse(["Sunny in both."])))
    calls = (
        ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("toolu_2", "get_weather", '{"city": "Rome"}'),
    )
    request = GenerationRequest(
        messages=(
            Message("system", "Be brief."),
            Message("user", "Weather in Paris and Rome?"),
            Message("assistant", "Checking both.", tool_calls=calls),
            Message("tool", "18 °C, sunny", tool_call_id="toolu_1"),
            Message("tool", "24 °C, sunny", tool_call_id="toolu_2"),
            Message("assistant", "Sunny in both."),
            Message("user", "And now?"),
        ),
        tools=(WEATHER,),
    )
    claude.check_features(request)
    await events_of(claude, request)
    body = upstream.seen[0].body
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 °C, sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24 °C, sunny"},
            ],
        },
        {"role": "assistant", "content": "Sunny in both."},
        {"role": "user", "content": "And now?"},
    ]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city now.",
            "input_schema": json.loads(WEATHER.parameters),
        }
    ]
    assert "tool_choice" not in body  # auto with parallel calls is this API's default


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("none", True, {"type": "none"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", True, {"type": "any"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("function:get_time", True, {"type": "tool", "name": "get_time"}),
    ],
)
async def test_tool_choice_and_parallel_calls_are_translated(claude, upstream, tool_choice, parallel, expected):
    upstream.script("POST", PATH, sse_reply(anthropic_sse(["ok"])))
    await events_of(claude, ask(tools=(WEATHER, TIME), tool_choice=tool_choice, parallel_tool_calls=parallel))
    body = upstream.seen[0].body
    assert body["tool_choice"] == expected
    assert [tool["name"] for tool in body["tools"]] == ["get_weather", "get_time"]


async def test_a_json_schema_is_asked_for_as_a_forced_tool_whose_input_is_the_answer(claude, upstream):
    pieces = ['{"name": "Ada",', ' "age": 36}']
    upstream.script("POST", PATH, sse_reply(anthropic_sse([], tool_uses=[("toolu_9", "person", pieces)])))
    events = await events_of(claude, ask("Who wrote the first program?", response_format=PERSON))
    body = upstream.seen[0].body
    assert body["tools"] == [
        {
            "name": "person",
            "description": "Give your answer in the person format: this tool's input is the whole answer.",
            "input_schema": PERSON_SCHEMA,
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "person"}
    # The answer tool's input is the answer's text; no tool call reaches the client.
    assert [e.text for e in events if isinstance(e, TextDelta)] == pieces
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert (end.finish_reason, end.tool_calls) == ("stop", ())


def test_json_object_asks_for_any_object_and_generate_returns_it(claude, upstream):
    upstream.script(
        "POST", PATH, sse_reply(anthropic_sse([], tool_uses=[("toolu_9", "json_answer", ['{"ok": true}'])]))
    )
    completion = claude.generate(ask(response_format=ResponseFormat.parse({"type": "json_object"})))
    body = upstream.seen[0].body
    assert body["tools"][0]["name"] == "json_answer"
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    assert body["tool_choice"] == {"type": "tool", "name": "json_answer"}
    assert (completion.text, completion.finish_reason, completion.tool_calls) == ('{"ok": true}', "stop", ())


async def test_with_tools_too_the_model_may_call_one_of_them_or_answer(claude, upstream):
    upstream.script("POST", PATH, sse_reply(anthropic_sse([], tool_uses=[("toolu_1", "get_time", ["{}"])])))
    # the schema's name is a tool's: the answer tool takes another
    clash = ResponseFormat.parse({"type": "json_schema", "json_schema": {"name": "get_time", "schema": PERSON_SCHEMA}})
    events = await events_of(claude, ask(tools=(WEATHER, TIME), response_format=clash))
    body = upstream.seen[0].body
    assert [tool["name"] for tool in body["tools"]] == ["get_weather", "get_time", "json_answer"]
    assert body["tool_choice"] == {"type": "any"}
    assert events[-1].finish_reason == "tool_calls"
    assert events[-1].tool_calls == (ToolCall("toolu_1", "get_time", "{}"),)


def test_logprobs_are_refused_naming_the_field(claude):
    with pytest.raises(InvalidParameter) as caught:
        claude.check_features(ask(logprobs=0))
    assert caught.value.field == "logprobs"
    assert "Anthropic" in caught.value.message


def test_a_schema_whose_top_level_is_not_an_object_is_refused(claude):
    for schema in ({"type": "array"}, {}):
        anything = ResponseFormat.parse({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
        with pytest.raises(InvalidParameter) as caught:
            claude.check_features(ask(response_format=anything))
        assert caught.value.field == "response_format.json_schema.schema"
    claude.check_features(ask(response_format=PERSON, tools=(WEATHER,)))  # an object schema and tools are fine


def test_arguments_in_the_history_that_are_not_an_object_are_refused(claude):
    call = ToolCall("toolu_1", "get_weather", "Paris")
    request = GenerationRequest(messages=(Message("user", "hi"), Message("assistant", "", tool_calls=(call,))))
    with pytest.raises(InvalidParameter) as caught:
        claude.check_features(request)
    assert caught.value.field == "messages.1.tool_calls.0.function.arguments"


# --- tool calls back --------------------------------------------------------------------------------


async def test_tool_use_blocks_stream_as_tool_call_deltas_after_the_text(claude, upstream):
    uses = [("toolu_a", "get_weather", ['{"city": ', '"Paris"}']), ("toolu_b", "get_time", [])]
    upstream.script("POST", PATH, sse_reply(anthropic_sse(["Let me check."], tool_uses=uses)))
    events = await events_of(claude, ask(tools=(WEATHER, TIME)))
    assert [e for e in events if not isinstance(e, StreamEnd)] == [
        TextDelta("Let me check."),
        ToolCallDelta(0, "", "toolu_a", "get_weather"),
        ToolCallDelta(0, '{"city": '),
        ToolCallDelta(0, '"Paris"}'),
        ToolCallDelta(1, "", "toolu_b", "get_time"),
        ToolCallDelta(1, "{}"),  # an empty input comes without a piece: its arguments are "{}"
    ]
    end = events[-1]
    assert end.finish_reason == "tool_calls"
    assert end.tool_calls == (
        ToolCall("toolu_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("toolu_b", "get_time", "{}"),
    )
    assert end.usage == Usage(12, 3)


def test_generate_returns_the_calls(claude, upstream):
    uses = [("toolu_a", "get_weather", ['{"city": "Oslo"}'])]
    upstream.script("POST", PATH, sse_reply(anthropic_sse([], tool_uses=uses), split_every=9))
    completion = claude.generate(ask(tools=(WEATHER,), tool_choice="required"))
    assert completion.text == ""
    assert completion.tool_calls == (ToolCall("toolu_a", "get_weather", '{"city": "Oslo"}'),)
    assert completion.finish_reason == "tool_calls"


async def test_a_call_of_a_tool_the_request_did_not_offer_is_a_502(claude, upstream):
    upstream.script("POST", PATH, sse_reply(anthropic_sse([], tool_uses=[("toolu_a", "delete_all", ["{}"])])))
    with pytest.raises(UpstreamError) as caught:
        await events_of(claude, ask(tools=(WEATHER,)))
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")
    assert "'delete_all', which the request did not let it call" in caught.value.message


async def test_an_answer_tool_input_that_does_not_fit_the_schema_is_a_502(claude, upstream):
    upstream.script("POST", PATH, sse_reply(anthropic_sse([], tool_uses=[("toolu_9", "person", ['{"name": "Ada"}'])])))
    with pytest.raises(UpstreamError) as caught:
        await events_of(claude, ask(response_format=PERSON))
    assert caught.value.status == 502
    assert "'age' is a required property" in caught.value.message
