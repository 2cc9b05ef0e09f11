"""Tool calls with the official `openai` SDK against a live server serving the real SmolLM2 (on its default
engine, OpenVINO): a required call is valid every time, a call streams, and a tool result goes back in."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from django.conf import settings

from llmsite.testing import start_live_server

pytestmark = [pytest.mark.live_server, pytest.mark.real_model, pytest.mark.django_db]

SMOLLM2 = "SmolLM2-135M-Instruct"
MAX_TOKENS = 96


def function(name: str, description: str, properties: dict, required: list[str] | None = None) -> dict:
    parameters = {"type": "object", "properties": properties, "required": required or list(properties)}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


WEATHER = function(
    "get_weather",
    "Get the current weather in a city",
    {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    ["city"],
)
ADD = function("add", "Add two integers", {"a": {"type": "integer"}, "b": {"type": "integer"}})
SEARCH = function(
    "search_web", "Search the web", {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}}, ["query"]
)
EMAIL = function(
    "send_email",
    "Send an email",
    {"to": {"type": "string"}, "subject": {"type": "string", "maxLength": 60}, "urgent": {"type": "boolean"}},
)
TIMER = function("set_timer", "Set a timer", {"minutes": {"type": "number"}, "label": {"type": ["string", "null"]}})
TRANSLATE = function(
    "translate",
    "Translate text",
    {"text": {"type": "string"}, "language": {"enum": ["fr", "de", "es"]}},
)
TODO = function(
    "add_todos",
    "Add items to a to-do list",
    {"items": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3}},
)
LOOKUP = function(
    "lookup_order",
    "Look up an order",
    {
        "order": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "year": {"type": "integer"}},
            "required": ["id"],
        }
    },
)
NOW = {"type": "function", "function": {"name": "now", "description": "The current time"}}

CASES = [
    ([WEATHER], "What's the weather in Paris?"),
    ([WEATHER, ADD], "What is 12 plus 30?"),
    ([SEARCH, WEATHER], "Find recent news about volcanoes."),
    ([EMAIL], "Email bob@example.com that the meeting moved to 3pm."),
    ([TIMER, NOW], "Set a timer for 10 minutes for the pasta."),
    ([TRANSLATE], "Translate 'good morning' into German."),
    ([TODO, SEARCH], "Add milk and eggs to my list."),
    ([LOOKUP], "Where is my order A-1234?"),
    ([NOW, ADD, WEATHER], "What time is it?"),
    ([ADD, TIMER, EMAIL, TRANSLATE], "Hello!"),  # nothing fits: a call is still required
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    server = start_live_server(
        tmp_path_factory.mktemp("tools-site"), MODELS_DIR=str(settings.MODELS_DIR), LLM_MODEL=SMOLLM2
    )
    server.api_key = server.create_api_key()
    yield server
    server.stop()


@pytest.fixture
def client(site):
    return openai.OpenAI(base_url=f"{site.url}/v1", api_key=site.api_key, max_retries=0, timeout=120)


def check_call(name: str, arguments: str, tools: list[dict]) -> None:
    functions = {tool["function"]["name"]: tool["function"] for tool in tools}
    assert name in functions
    schema = functions[name].get("parameters", {"type": "object", "properties": {}, "additionalProperties": False})
    jsonschema.validate(json.loads(arguments), schema)


def test_required_yields_a_valid_call_every_time(client):
    for tools, prompt in CASES:
        completion = client.chat.completions.create(
            model=SMOLLM2,
            messages=[{"role": "user", "content": prompt}],
            tools=tools,
            tool_choice="required",
            max_tokens=MAX_TOKENS,
        )
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls", (prompt, choice)
        assert choice.message.content is None
        (call,) = choice.message.tool_calls
        assert call.type == "function" and call.id.startswith("call_")
        check_call(call.function.name, call.function.arguments, tools)


def test_a_named_function_streams_as_openai_streams_it(client):
    stream = client.chat.completions.create(
        model=SMOLLM2,
        messages=[{"role": "user", "content": "What's the weather in Rome?"}],
        tools=[WEATHER, ADD],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=MAX_TOKENS,
        stream=True,
    )
    calls: dict[int, dict] = {}
    finish = None
    pieces = 0
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or ():
            call = calls.setdefault(delta.index, {"id": delta.id, "name": delta.function.name, "arguments": ""})
            call["arguments"] += delta.function.arguments or ""
            pieces += 1
    assert finish == "tool_calls"
    assert list(calls) == [0] and pieces > 2
    assert calls[0]["id"].startswith("call_") and calls[0]["name"] == "get_weather"
    check_call("get_weather", calls[0]["arguments"], [WEATHER])


def test_a_tool_result_goes_back_and_the_model_answers_it(client):
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(
        model=SMOLLM2, messages=messages, tools=[WEATHER], tool_choice="required", max_tokens=MAX_TOKENS
    )
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21, "sky": "sunny"}'})
    second = client.chat.completions.create(
        model=SMOLLM2, messages=messages, tools=[WEATHER], tool_choice="none", max_tokens=40
    )
    choice = second.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.tool_calls is None
    assert choice.message.content
