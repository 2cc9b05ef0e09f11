"""Tool calls on local models: tools are checked once, described in the prompt, and a call the model must
make is always a valid call of a listed function; calls come back whole, and streamed piece by piece.

The tiny models are random weights: left alone they never write a call. Under "required" or a named
function every answer must still be one call of a listed function whose arguments fit its parameters.
"""

from __future__ import annotations

import asyncio
import json
import re

import jsonschema
import pytest

from inference.providers.base import (
    GenerationRequest,
    InvalidParameter,
    Message,
    SamplingParams,
    StreamEnd,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from inference.providers.constraints import JsonConstraint, ResponseFormat, Vocabulary
from inference.providers.tools import ToolCallParser, constraint_for, parse_tool_choice, parse_tools, prepare
from inference.runners import wire

from .test_batching import generate_together

# Bounded in every direction, so a whole call always fits in MAX_NEW tokens: only a constraint that
# lets a wrong token through can fail these tests.
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 8}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"type": "integer", "minimum": 0, "maximum": 99},
                "b": {"type": "integer", "minimum": 0, "maximum": 99},
            },
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
}
NOW = {"type": "function", "function": {"name": "now", "description": "The time"}}  # no parameters
TAGS = {
    "type": "function",
    "function": {
        "name": "tag-it",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "tags": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/tag"}},
                "loud": {"type": "boolean"},
            },
            "required": ["tags", "loud"],
            "additionalProperties": False,
            "$defs": {"tag": {"enum": ["red", "blue"]}},
        },
    },
}
# The tiny models' context window is 256 tokens: a prompt describing more than these leaves no room to answer.
TOOL_SETS = {"weather": [WEATHER], "add+now": [ADD, NOW], "tags": [TAGS], "weather+now": [WEATHER, NOW]}
MAX_NEW = 80
CALL_ID = re.compile(r"^call_[0-9a-f]{24}$")


def ask(tools: list[dict], choice: str = "required", prompt: str = "Help me.", **sampling) -> GenerationRequest:
    sampling.setdefault("max_new_tokens", MAX_NEW)
    parsed = parse_tools(tools)
    return GenerationRequest(
        messages=(Message("user", prompt),),
        sampling=SamplingParams(**sampling),
        tools=parsed,
        tool_choice=choice,
    )


def assert_valid_call(call: ToolCall, tools: list[dict]) -> None:
    """A call of one of `tools`, its arguments JSON that fits that tool's parameters."""
    assert CALL_ID.match(call.id), call.id
    functions = {tool["function"]["name"]: tool["function"] for tool in tools}
    assert call.name in functions
    parameters = functions[call.name].get("parameters", {"type": "object"})
    arguments = json.loads(call.arguments)
    assert isinstance(arguments, dict)
    jsonschema.validate(arguments, parameters)


# --- reading tools ---------------------------------------------------------------------------------


def test_it_reads_openais_tools_and_tool_choice():
    tools = parse_tools([WEATHER, NOW])
    assert [tool.name for tool in tools] == ["get_weather", "now"]
    assert json.loads(tools[0].parameters) == WEATHER["function"]["parameters"]
    assert json.loads(tools[1].parameters) == {"type": "object", "properties": {}, "additionalProperties": False}
    assert parse_tool_choice(None, tools) == "auto"
    assert parse_tool_choice("required", tools) == "required"
    assert parse_tool_choice({"type": "function", "function": {"name": "now"}}, tools) == "function:now"


@pytest.mark.parametrize(
    ("tools", "field", "words"),
    [
        ({"type": "function"}, "tools", "list"),
        ([{"type": "retrieval"}], "tools.0.type", "function"),
        ([{"type": "function", "function": {"name": "has space"}}], "tools.0.function.name", "letters"),
        ([{"type": "function", "function": {"name": "x" * 65}}], "tools.0.function.name", "64"),
        ([ADD, ADD], "tools.1.function.name", "two tools"),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}],
            "tools.0.function.parameters",
            "object",
        ),
        (
            [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "properties": {"x": {"type": "array", "uniqueItems": True}}},
                    },
                }
            ],
            "tools.0.function.parameters",
            "uniqueItems",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": 3}}}],
            "tools.0.function.parameters",
            "valid",
        ),
        ([{"type": "function", "function": {"name": "f", "colour": "red"}}], "tools.0.function", "colour"),
        ([NOW] * 129, "tools", "128"),
    ],
)
def test_it_refuses_malformed_tools_naming_the_field(tools, field, words):
    with pytest.raises(InvalidParameter) as caught:
        parse_tools(tools)
    assert caught.value.field == field
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("choice", "field"),
    [
        ("always", "tool_choice"),
        ({"type": "function", "function": {"name": "missing"}}, "tool_choice.function.name"),
        ({"type": "function"}, "tool_choice"),
    ],
)
def test_it_refuses_a_tool_choice_that_names_no_listed_tool(choice, field):
    with pytest.raises(InvalidParameter) as caught:
        parse_tool_choice(choice, parse_tools([ADD]))
    assert caught.value.field == field


def test_the_runner_wire_carries_the_tools_and_their_constraint():
    prepared, _parser = prepare(ask([WEATHER, TAGS], "auto"))
    assert prepared.response_format is not None and prepared.response_format.type == "tool_calls"
    assert wire.request_from_dict(json.loads(json.dumps(wire.request_to_dict(prepared)))) == prepared


def test_tools_and_the_choice_change_the_cache_key():
    plain = GenerationRequest(messages=(Message("user", "Help me."),))
    keys = [plain.cache_params(), ask([ADD]).cache_params(), ask([ADD], "auto").cache_params()]
    keys.append(ask([ADD, NOW]).cache_params())
    assert all(a != b for i, a in enumerate(keys) for b in keys[i + 1 :])


# --- reading calls back ----------------------------------------------------------------------------


def feed_by_char(parser: ToolCallParser, text: str) -> list:
    events = [event for char in text for event in parser.feed(char)]
    return events + parser.flush()


def test_the_parser_reads_text_then_calls_as_they_arrive():
    parser = ToolCallParser(parse_tools([WEATHER, ADD]), tagged=True)
    text = (
        'Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}</tool_call>\n'
        '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
    )
    events = feed_by_char(parser, text)
    content, calls, reason = parser.result("stop")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip() == content == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Oslo", "unit": "c"}),
        ("add", {"a": 1, "b": 2}),
    ]
    assert reason == "tool_calls"
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    for index, call in enumerate(calls):
        mine = [d for d in deltas if d.index == index]
        assert (mine[0].id, mine[0].name, mine[0].arguments) == (call.id, call.name, "")  # name first
        assert all(d.id is None and d.name is None for d in mine[1:])
        assert len(mine) > 2  # the arguments arrive piece by piece
        assert "".join(d.arguments for d in mine) == call.arguments


def test_a_call_cut_by_the_token_limit_keeps_what_arrived_and_says_length():
    parser = ToolCallParser(parse_tools([ADD]), tagged=False)
    parser.feed('{"name": "add", "arguments": {"a": 1')
    parser.flush()
    content, calls, reason = parser.result("length")
    assert (content, [(c.name, c.arguments) for c in calls], reason) == ("", [("add", '{"a": 1')], "length")


@pytest.mark.parametrize("text", ["a < b and <tool", "<tool_call>not json</tool_call>", 'no <tool_call>{"name": "x'])
def test_text_that_is_not_a_whole_call_stays_text(text):
    parser = ToolCallParser(parse_tools([ADD]), tagged=True)
    events = feed_by_char(parser, text)
    content, calls, reason = parser.result("stop")
    assert (content, calls, reason) == (text, (), "stop")
    assert "".join(e.text for e in events) == text


def test_a_call_of_an_unlisted_function_is_text_and_one_in_another_order_is_read_whole():
    parser = ToolCallParser(parse_tools([ADD]), tagged=True)
    unlisted = '<tool_call>{"name": "rm", "arguments": {}}</tool_call>'
    reordered = '<tool_call>{"arguments": {"a": 1, "b": 2}, "name": "add"}</tool_call>'
    feed_by_char(parser, unlisted + reordered)
    content, calls, _reason = parser.result("stop")
    assert content == unlisted
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("add", {"a": 1, "b": 2})]


# --- the constraint --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vocabulary(tiny_provider):
    tokenizer = tiny_provider.tokenizer
    return Vocabulary(tokenizer, eos_token_ids=tiny_provider._eos_ids(), size=len(tokenizer))


def fits(vocabulary, response_format: ResponseFormat, text: str, tokenizer) -> bool:
    constraint = JsonConstraint(vocabulary, response_format)
    return (
        all(constraint.matcher.consume_token(t) for t in tokenizer.encode(text)) and constraint.matcher.is_accepting()
    )


NOW_CALL = '<tool_call>{"name": "now", "arguments": {}}</tool_call>'


@pytest.mark.parametrize(
    ("text", "several", "allowed"),
    [
        ("Just text, no call.", False, True),
        ('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>', False, True),
        ('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 200}}</tool_call>', False, False),  # out of range
        ('<tool_call>{"name": "sub", "arguments": {"a": 1, "b": 2}}</tool_call>', False, False),  # unlisted
        ('<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>', False, False),  # b is required
        ('Sure <tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>', False, False),
        (f"{NOW_CALL}\n{NOW_CALL}", True, True),  # two calls with parallel_tool_calls
        (f"{NOW_CALL}\n{NOW_CALL}", False, False),  # one without
    ],
)
def test_under_auto_the_answer_is_text_or_whole_valid_calls(vocabulary, tiny_provider, text, several, allowed):
    tools = parse_tools([ADD, NOW])
    request = GenerationRequest(prompt="x", tools=tools, tool_choice="auto", parallel_tool_calls=several)
    response_format = constraint_for(request)
    assert response_format is not None
    assert fits(vocabulary, response_format, text, tiny_provider.tokenizer) is allowed


# --- the prompt ------------------------------------------------------------------------------------

ROUND_TRIP = (
    Message("user", "Weather in Oslo?"),
    Message("assistant", "", (ToolCall("call_1", "get_weather", '{"city": "Oslo", "unit": "c"}'),)),
    Message("tool", "-3 and snowing", tool_call_id="call_1"),
)


def test_a_template_without_tools_gets_them_in_a_system_block_and_results_as_responses(tiny_provider):
    request = GenerationRequest(messages=ROUND_TRIP, tools=parse_tools([WEATHER]), tool_choice="auto")
    rendered = tiny_provider.render(request)
    assert rendered.startswith("<|im_start|>system\nYou can call these functions:\n<tools>\n")
    assert '"name": "get_weather"' in rendered and "<tool_call>" in rendered
    assert (
        '<|im_start|>assistant\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}'
        in rendered
    )
    assert (
        '<|im_start|>user\n<tool_response>\n{"name": "get_weather", "content": "-3 and snowing"}\n</tool_response>'
        in rendered
    )
    assert rendered.endswith("<|im_start|>assistant\n")


def test_under_tool_choice_none_the_tools_are_not_described_but_the_exchange_is(tiny_provider):
    request = GenerationRequest(messages=ROUND_TRIP, tools=parse_tools([WEATHER]), tool_choice="none")
    rendered = tiny_provider.render(request)
    assert "<tools>" not in rendered
    assert "-3 and snowing" in rendered and '"city": "Oslo"' in rendered
    assert prepare(request) == (request, None)


# A template in the style of Qwen's and Hermes': it writes the tools, the calls and the results itself.
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTOOLS:{% for t in tools %} {{ t.function.name }}{% endfor %}"
    "<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}CALL {{ c.function.name }} {{ c.function.arguments | tojson }}{% endfor %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_template_that_takes_tools_renders_them_itself(tiny_models_dir):
    from inference.providers.hf import HFProvider

    provider = HFProvider("tiny-a", tiny_models_dir / "tiny-a")
    provider.load_tokenizer()
    provider.tokenizer.chat_template = TOOLS_TEMPLATE
    request = GenerationRequest(messages=ROUND_TRIP, tools=parse_tools([WEATHER, NOW]), tool_choice="required")
    rendered = provider.render(request)
    assert rendered.startswith("<|im_start|>system\nTOOLS: get_weather now<|im_end|>")
    assert 'CALL get_weather {"city": "Oslo", "unit": "c"}' in rendered
    assert "<|im_start|>tool\n-3 and snowing<|im_end|>" in rendered
    assert "<tools>" not in rendered  # no second description in a block of our own


# --- generation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool_set", list(TOOL_SETS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_random_model_under_required_always_makes_a_valid_call_of_a_listed_function(tiny_provider, tool_set, seed):
    tools = TOOL_SETS[tool_set]
    answer = tiny_provider.generate(ask(tools, temperature=1.0, seed=seed))
    assert answer.finish_reason == "tool_calls"
    assert answer.text == ""
    assert len(answer.tool_calls) == 1
    assert_valid_call(answer.tool_calls[0], tools)


def test_a_named_function_is_the_one_called_batched_with_free_rows(tiny_provider, batched):
    tools = [NOW, TAGS]
    named = [ask(tools, "function:tag-it", temperature=1.0, seed=seed) for seed in (4, 5)]
    free = GenerationRequest(prompt="Tell me about the sea.", sampling=SamplingParams(max_new_tokens=16))
    requests = [named[0], free, named[1]]
    together = generate_together(batched, requests)  # admitted at one step: they decode side by side
    for request, answer in zip(requests, together, strict=True):
        alone = tiny_provider.generate(request)  # the one-by-one path: a logits processor in generate()
        assert (answer.text, answer.finish_reason) == (alone.text, alone.finish_reason)
        assert [(c.name, c.arguments) for c in answer.tool_calls] == [(c.name, c.arguments) for c in alone.tool_calls]
        if request.tools:
            assert answer.tool_calls[0].name == "tag-it"
            assert_valid_call(answer.tool_calls[0], tools)


def test_under_auto_a_random_model_may_answer_in_text(tiny_provider):
    tools = TOOL_SETS["add+now"]
    answers = [tiny_provider.generate(ask(tools, "auto", temperature=1.0, seed=s)) for s in (1, 2, 3)]
    texts = [a for a in answers if not a.tool_calls]
    assert texts and all(a.text and a.finish_reason in ("stop", "length") for a in texts)
    for answer in answers:
        for call in answer.tool_calls:
            assert_valid_call(call, tools)


async def test_streamed_tool_call_deltas_join_into_the_call(batched):
    tools = TOOL_SETS["weather"]
    events = [event async for event in batched.stream(ask(tools, temperature=1.0, seed=7))]
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.finish_reason == "tool_calls"
    assert not [e for e in events if isinstance(e, TextDelta)]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    (call,) = end.tool_calls
    assert (deltas[0].index, deltas[0].id, deltas[0].name, deltas[0].arguments) == (0, call.id, call.name, "")
    assert len(deltas) > 2 and all(d.index == 0 and d.id is None for d in deltas[1:])
    assert "".join(d.arguments for d in deltas) == call.arguments
    assert_valid_call(call, tools)


async def test_closing_a_tool_call_stream_cancels_the_generation(batched):
    stream = batched.stream(ask(TOOL_SETS["weather+now"], temperature=1.0, seed=8))
    first = await anext(stream)
    assert isinstance(first, ToolCallDelta)
    await stream.aclose()
    for _ in range(100):  # the engine drops the row within a step
        if batched.scheduler.running == 0:
            break
        await asyncio.sleep(0.05)
    assert batched.scheduler.running == 0


def test_a_runner_process_makes_the_call_this_process_makes(tiny_models_dir, tiny_provider):
    from inference.runners.client import RunnerProvider

    from .test_runners import options

    runner = RunnerProvider(options(tiny_models_dir / "tiny-a"))
    runner.load()
    try:
        request = ask(TOOL_SETS["tags"], temperature=1.0, seed=21)
        there = runner.generate(request)

        async def streamed():
            return [event async for event in runner.stream(request)]

        events = asyncio.run(streamed())
    finally:
        runner.close()
    here = tiny_provider.generate(request)
    assert [(c.name, c.arguments) for c in there.tool_calls] == [(c.name, c.arguments) for c in here.tool_calls]
    assert there.finish_reason == "tool_calls"
    assert "".join(e.arguments for e in events if isinstance(e, ToolCallDelta)) == here.tool_calls[0].arguments
    assert events[-1].tool_calls[0].name == here.tool_calls[0].name


# --- /v1/chat/completions ------------------------------------------------------------------------------

CHAT = {"model": "tiny-a", "messages": [{"role": "user", "content": "Weather in Oslo?"}], "max_tokens": MAX_NEW}


@pytest.mark.django_db
def test_chat_completions_answer_with_tool_calls_in_openais_shape(alice_client, serving):
    body = {**CHAT, "tools": [WEATHER, NOW], "tool_choice": "required"}
    response = alice_client.post("/v1/chat/completions", body, format="json")
    assert response.status_code == 200, response.content
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    (call,) = message["tool_calls"]
    assert call["type"] == "function"
    assert_valid_call(ToolCall(call["id"], call["function"]["name"], call["function"]["arguments"]), [WEATHER, NOW])
    again = alice_client.post("/v1/chat/completions", body, format="json")  # greedy: the cached answer
    assert again["X-Cache"] == "HIT"
    (cached,) = again.json()["choices"][0]["message"]["tool_calls"]
    assert cached["function"] == call["function"] and cached["id"] != call["id"]  # every answer's ids are its own


@pytest.mark.django_db
def test_chat_completions_take_back_the_calls_and_their_results(alice_client, serving):
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "-3 and snowing"},
    ]
    body = {**CHAT, "messages": messages, "tools": [WEATHER], "tool_choice": "none", "max_tokens": 4}
    response = alice_client.post("/v1/chat/completions", body, format="json")
    assert response.status_code == 200, response.content
    assert isinstance(response.json()["choices"][0]["message"]["content"], str)
    assert "tool_calls" not in response.json()["choices"][0]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools.0.function.name", "letters"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "not": {}}}}]},
            "tools.0.function.parameters",
            "not",
        ),
        (
            {"tools": [ADD], "tool_choice": {"type": "function", "function": {"name": "mul"}}},
            "tool_choice.function.name",
            "mul",
        ),
        ({"tool_choice": "required"}, "tool_choice", "needs tools"),
        ({"tools": [ADD], "response_format": {"type": "json_object"}}, "response_format", "tool_choice"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages", "tool_call_id"),
        ({"messages": [{"role": "user", "content": None}]}, "messages", "content"),
        ({"functions": [ADD["function"]]}, "functions", "not supported"),
    ],
)
def test_chat_completions_refuse_bad_tool_requests_in_openais_shape(alice_client, serving, change, param, words):
    response = alice_client.post("/v1/chat/completions", {**CHAT, **change}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"].startswith(param), error
    assert words in error["message"]


async def test_the_stream_sends_each_call_as_openai_does():
    from inference.openai_apis import _chunks
    from inference.providers.base import Usage

    first = ToolCallDelta(0, "", "call_" + "0" * 24, "add")

    async def rest():
        for piece in ('{"a": 1,', ' "b": 2}'):
            yield ToolCallDelta(0, piece)
        yield StreamEnd(
            Usage(3, 4), "tool_calls", tool_calls=(ToolCall("call_" + "0" * 24, "add", '{"a": 1, "b": 2}'),)
        )

    frames = [
        frame async for frame in _chunks(first, rest(), completion_id="cmpl-1", model="tiny-a", include_usage=False)
    ]
    chunks = [json.loads(f.decode().removeprefix("data: ")) for f in frames if f != b"data: [DONE]\n\n"]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[1] == {
        "tool_calls": [
            {"index": 0, "id": "call_" + "0" * 24, "type": "function", "function": {"name": "add", "arguments": ""}}
        ]
    }
    assert [d["tool_calls"][0]["function"]["arguments"] for d in deltas[2:4]] == ['{"a": 1,', ' "b": 2}']
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_only_calls_no_result_answers_are_written_into_the_text():
    from inference.providers.tools import unanswered_calls_as_text

    asked = {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    answered = {"id": "call_2", "name": "now", "arguments": "{}"}
    turns = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [asked]},
        {"role": "user", "content": "And the time?"},
        {"role": "assistant", "content": "Let me see.", "tool_calls": [answered]},
        {"role": "tool", "content": "12:00", "tool_call_id": "call_2"},
    ]
    settled = unanswered_calls_as_text(turns)
    assert settled[1] == {
        "role": "assistant",
        "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
    }
    assert settled[3] == turns[3]  # its result follows: it stays a call
    assert [t["role"] for t in settled] == [t["role"] for t in turns]
