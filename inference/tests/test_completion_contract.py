"""What a completion's client can rely on: finish reasons as OpenAI clients know them, one id from the
response to the usage record, and answers that match the schema the site publishes."""

from __future__ import annotations

import uuid

import httpx
import jsonschema
import openai
import pytest
from drf_spectacular.generators import SchemaGenerator

from inference import services
from inference.models import InferenceRecord
from inference.tests.fake_upstream import openai_sse, sse_reply
from llmsite.testing import start_live_server

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "Say something you may not."}]


def withholding(upstream, times: int = 1) -> None:
    """The upstream's next answers are withheld by its content filter (finish_reason content_filter)."""
    for _ in range(times):
        upstream.script(
            "POST", "/v1/chat/completions", sse_reply(openai_sse(["I can"], finish_reason="content_filter"))
        )


@pytest.fixture(scope="module")
def module_upstream():
    from inference.tests.fake_upstream import FakeUpstream

    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory, module_upstream):
    """A live llmsite serving an OpenAI-compatible upstream, with a user's API key for the official client."""
    data_dir = tmp_path_factory.mktemp("contract-site")
    server = start_live_server(
        data_dir,
        LLM_PROVIDER="openai",
        OPENAI_BASE_URL=f"{module_upstream.url}/v1",
        OPENAI_API_KEY="",
        OPENAI_MODEL="llama-test",
        LLM_MODEL="llama-test",
        LLM_REMOTE_MAX_RETRIES="0",
    )
    with httpx.Client(base_url=server.url, timeout=60) as http:
        credentials = {"username": "ada", "password": "a long pass phrase"}
        http.post("/api/v1/auth/register", json=credentials).raise_for_status()
        access = http.post("/api/v1/auth/token", json=credentials).json()["access"]
        created = http.post("/api/v1/auth/keys", json={"name": "sdk"}, headers={"Authorization": f"Bearer {access}"})
        server.api_key = created.raise_for_status().json()["key"]
    yield server
    server.stop()


@pytest.fixture
def openai_client(site):
    return openai.OpenAI(base_url=f"{site.url}/v1", api_key=site.api_key, max_retries=0, timeout=60)


def record_ids(site) -> list[str]:
    """The usage records' ids in the live site's database, oldest first."""
    # A UUID column: text without dashes on SQLite, a UUID on PostgreSQL.
    return [
        uuid.UUID(str(row[0])).hex for row in site.query("SELECT request_id FROM inference_inferencerecord ORDER BY id")
    ]


@pytest.fixture
def filtered_upstream(settings, upstream):
    """In this process: the site serving an upstream whose answers are withheld (finish_reason content_filter)."""
    settings.OPENAI_BASE_URL = f"{upstream.url}/v1"
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_API_TYPE = "openai"
    settings.OPENAI_MODEL = "llama-test"
    settings.LLM_REMOTE_MAX_RETRIES = 0
    withholding(upstream, times=2)
    services.provider_activate(provider="openai")
    return upstream


def schema_validator(component: str) -> jsonschema.Validator:
    """A validator for one component of the published OpenAPI schema."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return jsonschema.Draft7Validator({"$ref": f"#/components/schemas/{component}", **document})


@pytest.mark.live_server
def test_an_upstream_content_filter_reaches_openai_clients_as_content_filter(module_upstream, openai_client):
    withholding(module_upstream, times=2)
    completion = openai_client.chat.completions.create(model="llama-test", messages=MESSAGES)
    assert completion.choices[0].finish_reason == "content_filter"
    chunks = list(openai_client.chat.completions.create(model="llama-test", messages=MESSAGES, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"


@pytest.mark.live_server
def test_the_response_the_stream_and_the_usage_record_carry_one_id(module_upstream, openai_client, site):
    withholding(module_upstream, times=2)
    before = len(record_ids(site))
    completion = openai_client.chat.completions.create(model="llama-test", messages=MESSAGES)
    chunks = list(openai_client.chat.completions.create(model="llama-test", messages=MESSAGES, stream=True))
    answered, streamed = record_ids(site)[before:]
    assert completion.id == f"chatcmpl-{answered}"
    assert {c.id for c in chunks} == {f"chatcmpl-{streamed}"}


def test_a_predict_answer_matches_the_published_schema(filtered_upstream, alice_client):
    body = alice_client.post("/api/v1/predict", {"prompt": "Hi", "max_new_tokens": 5}, format="json").json()
    assert body["finish_reason"] == "content_filter"
    schema_validator("Completion").validate(body)
    assert body["id"] == f"cmpl-{InferenceRecord.objects.get().request_id.hex}"


def test_the_schema_refuses_a_finish_reason_predict_never_gives(filtered_upstream, alice_client):
    body = alice_client.post("/api/v1/predict", {"prompt": "Hi"}, format="json").json()
    with pytest.raises(jsonschema.ValidationError):
        schema_validator("Completion").validate({**body, "finish_reason": "end_turn"})


def test_a_grounded_answer_in_a_conversation_matches_the_published_schema(serving, alice_client):
    thread = alice_client.post("/api/v1/conversations", {}, format="json").json()["id"]
    body = alice_client.post(
        "/api/v1/predict", {"prompt": "Hi", "max_new_tokens": 3, "conversation": thread}, format="json"
    ).json()
    assert body["conversation"] == thread
    schema_validator("Completion").validate(body)
