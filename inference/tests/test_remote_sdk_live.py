"""The official `openai` SDK, unmodified, against remote models through a live server's `/v1/`.

One live server names `openai/gpt-test` and `anthropic/claude-test`; both providers point at one
loopback stand-in (`fake_upstream.py`) that answers in each API's documented wire format: OpenAI's
Chat Completions chunks, Anthropic's Messages events. Each test scripts what the stand-in answers and
reads back what it was sent, so both directions of the translation are checked: structured output
(`chat.completions.parse`; Anthropic answers the forced tool's `tool_use`), tool calls plain and
streamed, a tool result going back, logprobs; and what cannot be served is a 400 in OpenAI's error
shape naming the parameter, before any request reaches the upstream. A tiny local model (loaded on
first use) answers for the one combination that is refused on local models only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import openai
import pytest
from pydantic import BaseModel

from inference.tests.fake_upstream import FakeUpstream, anthropic_sse, json_reply, openai_sse, sse_reply
from llmsite.testing import start_live_server

pytestmark = pytest.mark.live_server

OPENAI_MODEL = "openai/gpt-test"
ANTHROPIC_MODEL = "anthropic/claude-test"
LOCAL_MODEL = "tiny-a"


class City(BaseModel):
    name: str
    country: str


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@dataclass(frozen=True)
class Wire:
    """One remote API as the stand-in speaks it: where it is asked, and how it answers."""

    model: str
    path: str
    text: Callable[[list[str]], bytes]  # an answer in text pieces
    call: Callable[[str, str, list[str]], bytes]  # an answer that is one tool call (id, name, argument pieces)


OPENAI = Wire(
    OPENAI_MODEL,
    "/v1/chat/completions",
    lambda texts: openai_sse(texts),
    lambda call_id, name, pieces: openai_sse([], tool_calls=[(call_id, name, pieces)]),
)
ANTHROPIC = Wire(
    ANTHROPIC_MODEL,
    "/v1/messages",
    lambda texts: anthropic_sse(texts),
    lambda call_id, name, pieces: anthropic_sse([], tool_uses=[(call_id, name, pieces)]),
)
WIRES = [pytest.param(OPENAI, id="openai"), pytest.param(ANTHROPIC, id="anthropic")]


@pytest.fixture(scope="module")
def stand_in():
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_models_dir, stand_in):
    server = start_live_server(
        tmp_path_factory.mktemp("remote-sdk"),
        MODELS_DIR=str(tiny_models_dir),
        LLM_PROVIDER="hf",
        LLM_MODEL=LOCAL_MODEL,
        LLM_ENGINE="transformers",
        DEVICE="cpu",
        LLM_LOAD_AT_START="never",  # only one test needs the local model: it loads on first use
        EMBEDDINGS_LOAD_AT_START="never",
        OPENAI_BASE_URL=f"{stand_in.url}/v1",
        OPENAI_API_KEY="sk-test-openai-0123456789",
        OPENAI_MODEL="gpt-test",
        ANTHROPIC_BASE_URL=stand_in.url,
        ANTHROPIC_API_KEY="sk-ant-test-0123456789",
        ANTHROPIC_MODEL="claude-test",
        LLM_REMOTE_MAX_RETRIES="0",
    )
    credentials = {"username": "ada", "password": "a long pass phrase"}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        http.post("/api/v1/auth/register", json=credentials).raise_for_status()
        access = http.post("/api/v1/auth/token", json=credentials).raise_for_status().json()["access"]
        created = http.post("/api/v1/auth/keys", json={"name": "sdk"}, headers={"Authorization": f"Bearer {access}"})
        server.api_key = created.raise_for_status().json()["key"]
    yield server
    server.stop()


@pytest.fixture
def client(site, stand_in):
    """The SDK on the site; the stand-in starts each test with nothing scripted and nothing seen."""
    stand_in.replies.clear()
    stand_in.seen.clear()
    yield openai.OpenAI(base_url=f"{site.url}/v1", api_key=site.api_key, max_retries=0, timeout=120)
    leftover = {key: len(queue) for key, queue in stand_in.replies.items() if queue}
    assert leftover == {}, f"scripted answers nobody asked for: {leftover}"


def sent(stand_in: FakeUpstream, wire: Wire) -> dict:
    """The one request body the stand-in received for `wire`."""
    [request] = stand_in.requests_to(wire.path)
    return request.body


# --- structured output ------------------------------------------------------------------------------------
def test_parse_returns_the_pydantic_object_from_openai(client, stand_in):
    stand_in.script("POST", OPENAI.path, sse_reply(OPENAI.text(['{"name":"Paris",', '"country":"France"}'])))
    completion = client.chat.completions.parse(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": "Which city is the capital of France?"}],
        response_format=City,
    )
    choice = completion.choices[0]
    assert choice.message.parsed == City(name="Paris", country="France")
    assert choice.finish_reason == "stop"
    # Passed through as the SDK wrote it: the strict schema of the Pydantic model.
    response_format = sent(stand_in, OPENAI)["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "City"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"]["required"] == ["name", "country"]


def test_parse_returns_the_pydantic_object_from_anthropics_forced_tool(client, stand_in):
    # Anthropic answers a forced tool_choice with that tool's tool_use block alone, its input in JSON pieces.
    answer = ANTHROPIC.call("toolu_01A09q90qw90lq917835lq9", "City", ['{"name": "Paris", ', '"country": "France"}'])
    stand_in.script("POST", ANTHROPIC.path, sse_reply(answer))
    completion = client.chat.completions.parse(
        model=ANTHROPIC_MODEL,
        messages=[{"role": "user", "content": "Which city is the capital of France?"}],
        response_format=City,
    )
    choice = completion.choices[0]
    assert choice.message.parsed == City(name="Paris", country="France")
    assert (choice.finish_reason, choice.message.tool_calls) == ("stop", None)
    body = sent(stand_in, ANTHROPIC)
    [tool] = body["tools"]
    assert tool["name"] == "City"
    assert tool["input_schema"]["required"] == ["name", "country"]
    assert body["tool_choice"] == {"type": "tool", "name": "City"}


def test_a_declined_structured_answer_reaches_parse_as_openais_refusal(client, stand_in):
    stand_in.script("POST", OPENAI.path, sse_reply(openai_sse([], refusal=["I can't help ", "with that."])))
    completion = client.chat.completions.parse(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "Something harmful"}], response_format=City
    )
    message = completion.choices[0].message
    assert (message.parsed, message.content, message.refusal) == (None, None, "I can't help with that.")
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("wire", WIRES)
def test_a_streamed_parse_ends_in_the_pydantic_object(client, stand_in, wire):
    pieces = ['{"name": "Rome", ', '"country": ', '"Italy"}']
    answer = wire.text(pieces) if wire is OPENAI else wire.call("toolu_stream", "City", pieces)
    stand_in.script("POST", wire.path, sse_reply(answer))
    with client.chat.completions.stream(
        model=wire.model,
        messages=[{"role": "user", "content": "Which city is the capital of Italy?"}],
        response_format=City,
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == "".join(pieces)
    assert final.choices[0].message.parsed == City(name="Rome", country="Italy")


@pytest.mark.parametrize("wire", WIRES)
def test_an_upstream_answer_that_does_not_fit_the_schema_is_a_502_the_sdk_raises(client, stand_in, wire):
    unfit = ['{"name": 42, "country": "France"}']
    answer = wire.text(unfit) if wire is OPENAI else wire.call("toolu_unfit", "City", unfit)
    stand_in.script("POST", wire.path, sse_reply(answer))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.parse(
            model=wire.model,
            messages=[{"role": "user", "content": "Which city is the capital of France, as a number?"}],
            response_format=City,
        )
    error = caught.value
    assert error.status_code == 502
    assert error.body == {
        "message": error.body["message"],
        "type": "api_error",
        "param": None,
        "code": "upstream_bad_response",
    }
    assert "does not fit its schema at name" in error.message


# --- tools ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("wire", WIRES)
def test_a_tool_call_comes_back_as_openai_returns_it(client, stand_in, wire):
    stand_in.script("POST", wire.path, sse_reply(wire.call("call_weather_1", "get_weather", ['{"city": ', '"Paris"}'])))
    completion = client.chat.completions.create(
        model=wire.model,
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_weather_1", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    body = sent(stand_in, wire)
    if wire is OPENAI:
        assert body["tools"] == [WEATHER]
        assert "tool_choice" not in body  # auto, the API's default, is left unsaid
    else:
        function = WEATHER["function"]
        assert body["tools"] == [
            {"name": "get_weather", "description": function["description"], "input_schema": function["parameters"]}
        ]
        assert body.get("tool_choice", {"type": "auto"}) == {"type": "auto"}


@pytest.mark.parametrize("wire", WIRES)
def test_a_streamed_tool_call_accumulates_from_its_deltas(client, stand_in, wire):
    pieces = ['{"ci', 'ty": "Ro', 'me"}']
    stand_in.script("POST", wire.path, sse_reply(wire.call("call_weather_2", "get_weather", pieces)))
    stream = client.chat.completions.create(
        model=wire.model,
        messages=[{"role": "user", "content": "What's the weather in Rome?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or ():
                call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                call["id"] = delta.id or call["id"]
                if delta.function is not None:
                    call["name"] = delta.function.name or call["name"]
                    call["arguments"] += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert calls == {0: {"id": "call_weather_2", "name": "get_weather", "arguments": '{"city": "Rome"}'}}
    body = sent(stand_in, wire)
    if wire is OPENAI:
        assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    else:
        assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}


@pytest.mark.parametrize("wire", WIRES)
def test_a_tool_result_goes_back_translated_and_the_answer_comes(client, stand_in, wire):
    stand_in.script("POST", wire.path, sse_reply(wire.text(["It is sunny", " in Paris."])))
    completion = client.chat.completions.create(
        model=wire.model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What's the weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_weather_3",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_weather_3", "content": '{"sky": "sunny", "celsius": 24}'},
        ],
        tools=[WEATHER],
    )
    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason) == ("It is sunny in Paris.", "stop")
    messages = sent(stand_in, wire)["messages"]
    if wire is OPENAI:
        assert messages[2]["role"] == "assistant"
        assert messages[2]["tool_calls"] == [
            {
                "id": "call_weather_3",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ]
        assert messages[3] == {
            "role": "tool",
            "tool_call_id": "call_weather_3",
            "content": '{"sky": "sunny", "celsius": 24}',
        }
    else:
        assert sent(stand_in, wire)["system"] == "Be brief."
        assert messages == [
            {"role": "user", "content": "What's the weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_weather_3", "name": "get_weather", "input": {"city": "Paris"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_weather_3",
                        "content": '{"sky": "sunny", "celsius": 24}',
                    }
                ],
            },
        ]


# --- logprobs ---------------------------------------------------------------------------------------------
def test_logprobs_pass_through_openai_and_come_back(client, stand_in):
    logprobs = [
        [("Hello", -0.25, [("Hello", -0.25), ("Hi", -1.5)])],
        [("!", -0.5, [("!", -0.5), (".", -1.25)])],
    ]
    stand_in.script("POST", OPENAI.path, sse_reply(openai_sse(["Hello", "!"], logprobs=logprobs)))
    completion = client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": "Greet me."}],
        logprobs=True,
        top_logprobs=2,
    )
    body = sent(stand_in, OPENAI)
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    choice = completion.choices[0]
    assert choice.message.content == "Hello!"
    tokens = choice.logprobs.content
    assert [(t.token, t.logprob, t.bytes) for t in tokens] == [("Hello", -0.25, list(b"Hello")), ("!", -0.5, [33])]
    assert [[(a.token, a.logprob) for a in t.top_logprobs] for t in tokens] == [
        [("Hello", -0.25), ("Hi", -1.5)],
        [("!", -0.5), (".", -1.25)],
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_logprobs_on_anthropic_are_a_400_naming_logprobs(client, stand_in, stream):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=ANTHROPIC_MODEL,
            messages=[{"role": "user", "content": "Greet me."}],
            logprobs=True,
            stream=stream,
        )
    assert caught.value.body["param"] == "logprobs"
    assert caught.value.body["type"] == "invalid_request_error"
    assert "Anthropic" in caught.value.body["message"]
    assert stand_in.seen == []


# --- what cannot be served: 400 in OpenAI's shape, naming the parameter -----------------------------------
HISTORY_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "call_x", "type": "function", "function": {"name": "get_weather", "arguments": "[1]"}}],
}
UNSUPPORTED = [
    pytest.param(
        model,
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
        "tool_choice.function.name",
        id=f"{model}-tool_choice-names-an-unknown-function",
    )
    for model in (OPENAI_MODEL, ANTHROPIC_MODEL, LOCAL_MODEL)
] + [
    pytest.param(OPENAI_MODEL, {"n": 9}, "n", id="n-over-the-maximum"),
    pytest.param(OPENAI_MODEL, {"top_logprobs": 2}, "top_logprobs", id="top_logprobs-without-logprobs"),
    pytest.param(OPENAI_MODEL, {"logprobs": True, "top_logprobs": 21}, "top_logprobs", id="top_logprobs-over-20"),
    pytest.param(OPENAI_MODEL, {"tool_choice": "required"}, "tool_choice", id="tool_choice-without-tools"),
    pytest.param(
        ANTHROPIC_MODEL,
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "names", "schema": {"type": "array", "items": {"type": "string"}}},
            }
        },
        "response_format.json_schema.schema",
        id="anthropic-schema-that-is-not-an-object",
    ),
    pytest.param(
        ANTHROPIC_MODEL,
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                HISTORY_CALL,
                {"role": "tool", "tool_call_id": "call_x", "content": "ok"},
            ],
            "tools": [WEATHER],
        },
        "messages.1.tool_calls.0.function.arguments",
        id="anthropic-history-call-whose-arguments-are-not-an-object",
    ),
    pytest.param(
        OPENAI_MODEL,
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "tool", "content": "ok"}]},
        "messages.1.tool_call_id",
        id="tool-message-without-tool_call_id",
    ),
    pytest.param(
        LOCAL_MODEL,
        {"tools": [WEATHER], "tool_choice": "auto", "response_format": {"type": "json_object"}},
        "response_format",
        id="local-tool_choice-auto-with-response_format",
    ),
]


@pytest.mark.parametrize(("model", "arguments", "param"), UNSUPPORTED)
def test_what_cannot_be_served_is_a_400_naming_the_parameter(client, stand_in, model, arguments, param):
    request = {"messages": [{"role": "user", "content": "What's the weather in Oslo?"}], **arguments}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, **request)
    error = caught.value.body
    assert (error["type"], error["param"]) == ("invalid_request_error", param), error
    assert error["code"] and error["message"]
    assert stand_in.seen == []


# The upstreams' own 400s, as each API words them: a tool result that answers no call.
UPSTREAM_REFUSALS = [
    pytest.param(
        OPENAI,
        {
            "error": {
                "message": "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                "with 'tool_calls'.",
                "type": "invalid_request_error",
                "param": "messages.[1].role",
                "code": None,
            }
        },
        "messages.[1].role",  # passed through: OpenAI was sent the client's fields
        id="openai",
    ),
    pytest.param(
        ANTHROPIC,
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "messages.1.content.0: unexpected `tool_use_id` found in `tool_result` blocks: call_gone. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
            },
        },
        None,  # Anthropic names no parameter, and its indices are of the translated request
        id="anthropic",
    ),
]


@pytest.mark.parametrize(("wire", "refusal", "param"), UPSTREAM_REFUSALS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_upstreams_400_reaches_the_sdk_as_a_400_with_its_words(client, stand_in, wire, refusal, param, stream):
    stand_in.script("POST", wire.path, json_reply(400, refusal))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=wire.model,
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "tool", "tool_call_id": "call_gone", "content": "ok"},
            ],
            stream=stream,
        )
    error = caught.value.body
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "upstream_rejected", param)
    assert refusal["error"]["message"] in error["message"]


@pytest.mark.parametrize("wire", WIRES)
def test_n_choices_ask_the_upstream_once_each(client, stand_in, wire):
    stand_in.script("POST", wire.path, sse_reply(wire.text(["One"])), sse_reply(wire.text(["Two"])))
    completion = client.chat.completions.create(
        model=wire.model, messages=[{"role": "user", "content": "Count."}], n=2, temperature=1.0
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert sorted(c.message.content for c in completion.choices) == ["One", "Two"]
    assert len(stand_in.requests_to(wire.path)) == 2
