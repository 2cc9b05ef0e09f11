"""Structured output: a response format is checked once, and a local model's answer under it always fits.

The tiny models are random weights: left alone they never write JSON. Under a response format
every answer must still parse and fit the schema, sampled or greedy, alone or batched with free rows.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest

from inference.providers.base import GenerationRequest, InvalidParameter, SamplingParams
from inference.providers.constraints import ResponseFormat
from inference.runners import wire

from .test_batching import generate_together

# Bounded in every direction (string lengths, item counts, number ranges), so a complete answer
# always fits in max_new_tokens: only a constraint that lets a wrong token through can fail these tests.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 8},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"enum": ["admin", "editor", "viewer"]},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 6}, "known": {"type": "boolean"}},
            "required": ["city", "known"],
            "additionalProperties": False,
        },
        "scores": {
            "type": "array",
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {"subject": {"enum": ["math", "art"]}, "grade": {"type": "integer", "maximum": 9}},
                "required": ["subject", "grade"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["name", "age", "role", "address", "scores"],
    "additionalProperties": False,
}
MAX_NEW = 160  # above the longest answer PERSON allows
SMOLLM2 = "SmolLM2-135M-Instruct"


def person_format() -> ResponseFormat:
    value = ResponseFormat.parse({"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}})
    assert value is not None
    return value


def ask(prompt: str, response_format: ResponseFormat | None = None, **sampling) -> GenerationRequest:
    sampling.setdefault("max_new_tokens", MAX_NEW)
    return GenerationRequest(prompt=prompt, sampling=SamplingParams(**sampling), response_format=response_format)


def assert_fits(text: str, schema: dict) -> None:
    jsonschema.validate(json.loads(text), schema)


# --- parsing ---------------------------------------------------------------------------------


def test_text_or_nothing_is_no_response_format():
    assert ResponseFormat.parse(None) is None
    assert ResponseFormat.parse({"type": "text"}) is None


def test_it_reads_json_object_and_json_schema():
    assert ResponseFormat.parse({"type": "json_object"}) == ResponseFormat("json_object")
    value = person_format()
    assert (value.type, value.name, json.loads(value.schema)) == ("json_schema", "person", PERSON)


def test_it_keeps_the_order_of_the_schemas_properties():
    value = person_format()
    assert list(json.loads(value.schema)["properties"]) == ["name", "age", "role", "address", "scores"]


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ("json", "response_format", "object"),
        ({"type": "xml"}, "response_format.type", "json_schema"),
        ({"type": "json_schema"}, "response_format.json_schema", "name"),
        ({"type": "json_schema", "json_schema": {"schema": {}}}, "response_format.json_schema.name", "name"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": "yes"}},
            "response_format.json_schema.strict",
            "strict",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": [1]}},
            "response_format.json_schema.schema",
            "",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "foo"}}},
            "response_format.json_schema.schema",
            "not a valid JSON schema",
        ),
    ],
)
def test_it_refuses_a_malformed_response_format_naming_the_field(value, field, words):
    with pytest.raises(InvalidParameter) as caught:
        ResponseFormat.parse(value)
    assert caught.value.field == field
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("schema", "keywords"),
    [
        ({"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}, ["if", "then"]),
        ({"type": "array", "uniqueItems": True}, ["uniqueItems"]),
        ({"not": {"type": "string"}}, ["not"]),
    ],
)
def test_it_refuses_a_schema_it_cannot_enforce_naming_the_keywords(schema, keywords):
    with pytest.raises(InvalidParameter) as caught:
        ResponseFormat.parse({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert caught.value.field == "response_format.json_schema.schema"
    assert "cannot enforce" in caught.value.message
    for keyword in keywords:
        assert keyword in caught.value.message


def test_the_runner_wire_carries_the_response_format():
    request = ask("hi", person_format())
    assert wire.request_from_dict(json.loads(json.dumps(wire.request_to_dict(request)))) == request
    plain = ask("hi")
    assert wire.request_from_dict(wire.request_to_dict(plain)).response_format is None


def test_a_response_format_changes_the_cache_key_and_free_text_keeps_its_own():
    plain, shaped = ask("hi"), ask("hi", person_format())
    assert "response_format" not in plain.cache_params()  # keys of answers cached before stay valid
    assert plain.cache_params() != shaped.cache_params()
    assert shaped.cache_params() != ask("hi", ResponseFormat("json_object")).cache_params()


# --- generation -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_random_model_sampling_under_a_schema_answers_json_that_fits(tiny_provider, seed):
    answer = tiny_provider.generate(ask("Who are you?", person_format(), temperature=1.0, seed=seed))
    assert answer.finish_reason == "stop"
    assert_fits(answer.text, PERSON)


def test_a_greedy_answer_fits_the_schema(tiny_provider):
    answer = tiny_provider.generate(ask("Describe a person", person_format()))
    assert answer.finish_reason == "stop"
    assert_fits(answer.text, PERSON)


async def test_streamed_deltas_under_a_schema_join_into_json_that_fits(batched):
    from inference.providers.base import StreamEnd, TextDelta

    events = [event async for event in batched.stream(ask("Who are you?", person_format(), temperature=1.0, seed=9))]
    assert isinstance(events[-1], StreamEnd) and events[-1].finish_reason == "stop"
    assert_fits("".join(e.text for e in events if isinstance(e, TextDelta)), PERSON)


def test_json_object_answers_a_json_object(tiny_provider):
    answer = tiny_provider.generate(ask("Anything", ResponseFormat("json_object"), temperature=0.7, seed=5))
    if answer.finish_reason == "stop":  # an open object may run to the token limit; one that ended is whole
        assert isinstance(json.loads(answer.text), dict)
    else:
        assert answer.text.startswith("{")


def test_constrained_and_free_requests_share_a_batch_and_each_gets_its_own_answer(tiny_provider, batched):
    shaped = [ask("Who are you?", person_format(), temperature=1.0, seed=seed) for seed in (11, 12)]
    free = [ask("Tell me about the sea.", max_new_tokens=24), ask("Paris", max_new_tokens=16, temperature=0.9, seed=4)]
    requests = [shaped[0], free[0], shaped[1], free[1]]
    together = generate_together(batched, requests)  # admitted at one step: they decode side by side
    for request, answer in zip(requests, together, strict=True):
        alone = tiny_provider.generate(request)  # the one-by-one path: a logits processor in generate()
        assert (answer.text, answer.finish_reason) == (alone.text, alone.finish_reason)
        if request.response_format is not None:
            assert answer.finish_reason == "stop"
            assert_fits(answer.text, PERSON)


@pytest.mark.real_model
def test_openvino_answers_json_that_fits_the_schema_batched_with_free_text(smollm2_exported):
    from inference.providers.batching import BatchLimits
    from inference.providers.openvino import OpenVINOProvider

    provider = OpenVINOProvider(SMOLLM2, smollm2_exported, limits=BatchLimits(max_batch_size=4))
    provider.load()
    try:
        requests = [
            ask("Describe a person as JSON.", person_format()),
            ask("Describe a person as JSON.", person_format(), temperature=1.0, seed=3),
            ask("Describe a person.", max_new_tokens=32),
        ]
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(provider.generate, requests))
    finally:
        provider.close()
    for answer in answers[:2]:
        assert answer.finish_reason == "stop"
        assert_fits(answer.text, PERSON)
    assert answers[2].usage.completion_tokens == 32  # free text is not held to JSON


def test_a_runner_process_enforces_the_response_format_as_this_process_does(tiny_models_dir, tiny_provider):
    from inference.runners.client import RunnerProvider

    from .test_runners import options

    runner = RunnerProvider(options(tiny_models_dir / "tiny-a"))
    runner.load()
    try:
        request = ask("Who are you?", person_format(), temperature=1.0, seed=21)
        there = runner.generate(request)
    finally:
        runner.close()
    assert there.text == tiny_provider.generate(request).text
    assert_fits(there.text, PERSON)


# --- /v1/chat/completions ---------------------------------------------------------------------

CHAT = {"model": "tiny-a", "messages": [{"role": "user", "content": "Who are you?"}], "max_tokens": MAX_NEW}
PERSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}


@pytest.mark.django_db
def test_chat_completions_answer_json_that_fits_the_schema(alice_client, serving):
    response = alice_client.post("/v1/chat/completions", {**CHAT, "response_format": PERSON_FORMAT}, format="json")
    assert response.status_code == 200, response.content
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert_fits(choice["message"]["content"], PERSON)


@pytest.mark.django_db
def test_a_cached_free_answer_is_not_the_answer_to_a_schema(alice_client, serving):
    free = alice_client.post("/v1/chat/completions", CHAT, format="json")
    again = alice_client.post("/v1/chat/completions", CHAT, format="json")
    assert again["X-Cache"] == "HIT"
    shaped = alice_client.post("/v1/chat/completions", {**CHAT, "response_format": PERSON_FORMAT}, format="json")
    assert shaped["X-Cache"] == "MISS"
    assert shaped.json()["choices"][0]["message"]["content"] != free.json()["choices"][0]["message"]["content"]
    assert_fits(shaped.json()["choices"][0]["message"]["content"], PERSON)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("response_format", "param", "words"),
    [
        (
            {"type": "json_schema", "json_schema": {"name": "tags", "schema": {"type": "array", "uniqueItems": True}}},
            "response_format.json_schema.schema",
            "uniqueItems",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 7}}},
            "response_format.json_schema.schema",
            "valid",
        ),
        ({"type": "yaml"}, "response_format.type", "json_schema"),
    ],
)
def test_chat_completions_refuse_a_format_they_cannot_enforce_in_openais_shape(
    alice_client, serving, response_format, param, words
):
    response = alice_client.post("/v1/chat/completions", {**CHAT, "response_format": response_format}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]


@pytest.mark.django_db
def test_text_response_format_is_free_text(alice_client, serving):
    body = {**CHAT, "max_tokens": 4, "response_format": {"type": "text"}}
    assert alice_client.post("/v1/chat/completions", body, format="json").status_code == 200


@pytest.mark.django_db
def test_predict_answers_json_that_fits_the_schema_and_refuses_what_it_cannot_enforce(alice_client, serving):
    body = {"prompt": "Who are you?", "max_new_tokens": MAX_NEW, "response_format": PERSON_FORMAT}
    response = alice_client.post("/api/v1/predict", body, format="json")
    assert response.status_code == 200, response.content
    assert_fits(response.json()["text"], PERSON)
    unsupported = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {"type": "string"}}}}
    refused = alice_client.post("/api/v1/predict", {**body, "response_format": unsupported}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "response_format.json_schema.schema"
    assert "not" in refused.json()["error"]["message"]


ADA = {"name": "Ada", "age": 36, "role": "admin", "address": {"city": "Paris", "known": True}, "scores": []}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_remote_model_passes_the_response_format_on_and_checks_the_answer(alice_client, settings, upstream, kind):
    from inference.engine import get_engine
    from inference.registry import ProviderSpec, build_provider
    from inference.tests.fake_upstream import anthropic_sse, openai_sse, sse_reply

    settings.OPENAI_BASE_URL = f"{upstream.url}/v1"
    settings.OPENAI_API_KEY = ""
    settings.ANTHROPIC_BASE_URL = upstream.url
    settings.ANTHROPIC_API_KEY = "sk-ant-test-0123456789abcdef"
    path = "/v1/chat/completions" if kind == "openai" else "/v1/messages"

    def answering(text: str) -> bytes:
        return openai_sse([text]) if kind == "openai" else anthropic_sse([], tool_uses=[("toolu_1", "person", [text])])

    upstream.script("POST", path, sse_reply(answering(json.dumps(ADA))), sse_reply(answering('{"name": "Ada"}')))
    provider = build_provider(ProviderSpec(kind, "model-test"))
    provider.load()
    get_engine().set(provider)
    try:
        body = {"prompt": "Who are you?", "response_format": PERSON_FORMAT}
        response = alice_client.post("/api/v1/predict", body, format="json")
        broken = alice_client.post("/api/v1/predict", {**body, "prompt": "And you?"}, format="json")
    finally:
        provider.close()
    assert response.status_code == 200, response.content
    assert json.loads(response.json()["text"]) == ADA
    sent = upstream.requests_to(path)[0].body
    if kind == "openai":  # passed through as it came
        assert sent["response_format"] == PERSON_FORMAT
    else:  # a tool the model must call, whose input is the answer
        assert sent["tools"][0]["input_schema"] == PERSON
        assert sent["tool_choice"] == {"type": "tool", "name": "person"}
    # An answer that does not fit is the upstream's failure, named: never handed on as if it fit.
    assert broken.status_code == 502, broken.content
    assert broken.json()["error"]["code"] == "upstream_bad_response"
    assert "'age' is a required property" in broken.json()["error"]["message"]


# --- what the OpenVINO engine can enforce ---------------------------------------------------------


def schema_format(schema: dict) -> ResponseFormat:
    value = ResponseFormat.parse({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert value is not None
    return value


def test_openvino_enforces_the_keywords_person_uses_and_json_object():
    from inference.providers.constraints import openvino_unsupported

    assert openvino_unsupported(person_format()) == []
    assert openvino_unsupported(ResponseFormat("json_object")) == []


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "object", "minProperties": 2}, ["minProperties"]),
        ({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}}, ["multipleOf"]),
        ({"type": "array", "items": {"type": "number", "maximum": 1}}, ["maximum (on a number)"]),
        ({"anyOf": [{"type": "string"}, {"allOf": [{"type": "string"}]}]}, ["allOf"]),
        ({"$defs": {"x": {"type": "object", "maxProperties": 1}}, "$ref": "#/$defs/x"}, ["maxProperties"]),
    ],
)
def test_openvino_names_the_keywords_it_would_not_enforce_wherever_they_are(schema, named):
    from inference.providers.constraints import openvino_unsupported

    assert openvino_unsupported(schema_format(schema)) == named


@pytest.mark.real_model
@pytest.mark.django_db
def test_a_schema_openvino_cannot_enforce_is_answered_by_its_transformers_twin_and_fits(
    alice_client, smollm2_exported, settings
):

    from inference.engine import get_engine
    from inference.providers.openvino import OpenVINOProvider

    provider = OpenVINOProvider(SMOLLM2, smollm2_exported)
    provider.load()
    get_engine().set(provider)
    # OpenVINO's own structured output would ignore the number bounds and multipleOf, and fail on minProperties.
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "votes": {"type": "integer", "multipleOf": 5},
        },
        "required": ["score", "votes"],
        "minProperties": 2,
    }
    try:
        body = {"prompt": "Rate this sentence: I love it.", "max_new_tokens": 40, "model": SMOLLM2}
        shaped = {"type": "json_schema", "json_schema": {"name": "rating", "schema": schema}}
        response = alice_client.post("/api/v1/predict", {**body, "response_format": shaped}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["finish_reason"] == "stop"
        jsonschema.validate(json.loads(response.json()["text"]), schema)
        assert provider._twin is not None  # it answered
        assert provider.needs_transformers(ask("x", schema_format({"type": "object"}))) == ""
        assert alice_client.post("/api/v1/predict", body, format="json").status_code == 200  # the pipeline serves on
    finally:
        provider.close()
