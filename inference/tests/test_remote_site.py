"""Remote providers in the site: availability in /api/v1/providers, switching, /readyz, predict, records, errors."""

from __future__ import annotations

import logging

import pytest

from inference import registry, services
from inference.engine import get_engine
from inference.models import InferenceRecord, ProviderConfig
from inference.protocol import CompletionRequest
from inference.providers.base import TextDelta
from inference.registry import ProviderSpec, build_provider
from inference.tests.fake_upstream import Reply, anthropic_sse, closed_port_url, json_reply, openai_sse, sse_reply
from llmsite.errors import ApplicationError

KEY = "sk-ant-site-0123456789abcdef"
MODELS = {"object": "list", "data": [{"id": "other-model", "object": "model", "owned_by": "me"}]}


@pytest.fixture(autouse=True)
def fresh_model_lists():
    registry._model_lists.clear()
    yield
    registry._model_lists.clear()


@pytest.fixture
def remote_settings(settings, upstream):
    """OpenAI-compatible (no key: a self-hosted server) and Anthropic both pointed at the fake upstream."""
    settings.OPENAI_BASE_URL = f"{upstream.url}/v1"
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_API_TYPE = "openai"
    settings.OPENAI_MODEL = "llama-test"
    settings.ANTHROPIC_BASE_URL = upstream.url
    settings.ANTHROPIC_API_KEY = KEY
    settings.ANTHROPIC_MODEL = "claude-test"
    settings.LLM_REMOTE_MAX_RETRIES = 1
    settings.LLM_REMOTE_RETRY_MAX_WAIT = 2
    settings.LLM_REMOTE_READ_TIMEOUT = 5
    return settings


def by_name(body):
    return {p["name"]: p for p in body["providers"]}


# --- availability --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_providers_list_says_what_to_set_when_a_remote_provider_is_not_configured(alice_client, settings):
    settings.ANTHROPIC_API_KEY = ""
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    providers = by_name(alice_client.get("/api/v1/providers").json())
    assert providers["anthropic"]["available"] is False
    assert providers["anthropic"]["reason"] == "not configured: set ANTHROPIC_API_KEY"
    assert providers["openai"]["available"] is False
    assert providers["openai"]["reason"] == "not configured: set OPENAI_API_KEY"


@pytest.mark.django_db
def test_the_providers_list_shows_a_self_hosted_server_with_the_models_it_lists(
    alice_client, remote_settings, upstream
):
    upstream.script("GET", "/v1/models", json_reply(200, MODELS))
    remote_settings.ANTHROPIC_API_KEY = ""  # only the OpenAI-compatible server is asked here
    for _ in range(2):
        openai = by_name(alice_client.get("/api/v1/providers").json())["openai"]
        assert (openai["available"], openai["reason"]) == (True, "")
        assert [m["name"] for m in openai["models"]] == ["llama-test", "other-model"]
        assert openai["models"][0]["detail"] == "default; not listed by " + upstream.url.removeprefix("http://")
    assert len(upstream.requests_to("/v1/models")) == 1  # the second call was answered from memory


@pytest.mark.django_db
def test_a_server_that_cannot_list_its_models_still_shows_the_default_with_the_reason(alice_client, settings):
    settings.OPENAI_BASE_URL = closed_port_url() + "/v1"
    settings.OPENAI_API_KEY = ""
    openai = by_name(alice_client.get("/api/v1/providers").json())["openai"]
    assert openai["available"] is True
    assert "could not list models: could not connect" in openai["models"][0]["detail"]


@pytest.mark.django_db
def test_selecting_a_remote_provider_that_is_not_configured_is_a_400(staff_client, settings):
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    response = staff_client.post("/api/v1/providers/active", {"provider": "openai"}, format="json")
    assert response.status_code == 400
    assert "set OPENAI_API_KEY" in response.json()["error"]["message"]
    assert not ProviderConfig.objects.exists()


@pytest.mark.django_db
def test_azure_without_a_key_is_unavailable_even_on_its_own_endpoint(alice_client, settings, upstream):
    settings.OPENAI_API_TYPE = "azure"
    settings.OPENAI_BASE_URL = upstream.url
    settings.OPENAI_API_KEY = ""
    openai = by_name(alice_client.get("/api/v1/providers").json())["openai"]
    assert (openai["available"], openai["reason"]) == (False, "not configured: set OPENAI_API_KEY")


# --- switching and serving -------------------------------------------------------------------------
@pytest.mark.django_db
def test_switching_to_a_remote_provider_serves_through_it_and_shows_everywhere(
    staff_client, client, alice_client, remote_settings, upstream
):
    remote_settings.ANTHROPIC_API_KEY = ""  # only the OpenAI-compatible server lists its models here
    upstream.script("GET", "/v1/models", json_reply(200, MODELS))
    response = staff_client.post("/api/v1/providers/active", {"provider": "openai"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["provider"], response.json()["model"], response.json()["state"]) == (
        "openai",
        "llama-test",
        "ready",
    )
    # Loading makes no generation request: an upstream briefly down cannot block a switch.
    assert upstream.requests_to("/v1/chat/completions") == []

    provider_check = client.get("/readyz").json()["checks"]["provider"]
    assert provider_check == {"ok": True, "detail": "openai:llama-test on remote"}

    listed = alice_client.get("/api/v1/providers").json()
    assert listed["active"]["provider"] == "openai"
    assert by_name(listed)["openai"]["active"] is True

    upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Hi", " there"], usage=(7, 2))))
    answer = alice_client.post("/api/v1/predict", {"prompt": "hello", "max_new_tokens": 8}, format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["text"], body["provider"], body["model"]) == ("Hi there", "openai", "llama-test")
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    record = InferenceRecord.objects.get()
    assert (record.provider, record.prompt_tokens, record.completion_tokens, record.status) == ("openai", 7, 2, "ok")
    assert upstream.requests_to("/v1/chat/completions")[0].body["max_tokens"] == 8


@pytest.mark.django_db
def test_switching_between_the_local_model_and_remote_ones_at_run_time(
    alice_client, remote_settings, tiny_settings, upstream
):
    def predict():
        return alice_client.post("/api/v1/predict", {"prompt": "hello", "max_new_tokens": 2}, format="json").json()

    services.provider_activate(provider="hf", model="tiny-a", device="cpu")
    assert predict()["provider"] == "hf"

    services.provider_activate(provider="anthropic")
    upstream.script("POST", "/v1/messages", sse_reply(anthropic_sse(["Claude", " here"], input_tokens=5)))
    answer = predict()
    assert (answer["provider"], answer["model"], answer["text"]) == ("anthropic", "claude-test", "Claude here")
    assert answer["usage"]["prompt_tokens"] == 5

    services.provider_activate(provider="hf", model="tiny-a", device="cpu")
    assert get_engine().status().provider == "hf"
    assert predict()["provider"] == "hf"
    assert ProviderConfig.objects.get(active=True).provider == "hf"


# --- upstream failures through the site ---------------------------------------------------------------
@pytest.mark.django_db
def test_a_refused_key_is_a_502_that_shows_the_key_nowhere(alice_client, remote_settings, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    services.provider_activate(provider="anthropic")
    body = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {KEY}"}}
    upstream.script("POST", "/v1/messages", json_reply(401, body))
    response = alice_client.post("/api/v1/predict", {"prompt": "hello"}, format="json")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_auth"
    assert "rejected the API key" in error["message"]
    assert KEY not in response.content.decode()
    record = InferenceRecord.objects.get()
    assert record.status == "error" and KEY not in record.error
    assert KEY not in caplog.text
    assert len(upstream.seen) == 1


@pytest.mark.django_db
def test_an_upstream_rate_limit_beyond_the_longest_wait_is_a_503_passing_on_its_retry_after(
    alice_client, remote_settings, upstream
):
    services.provider_activate(provider="openai")
    refusal = {"error": {"message": "slow down", "type": "rate_limit_error"}}
    upstream.script("POST", "/v1/chat/completions", json_reply(429, refusal, {"retry-after": "120"}))
    response = alice_client.post("/api/v1/predict", {"prompt": "hello"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_rate_limited"
    assert response["Retry-After"] == "120"


@pytest.mark.django_db
def test_an_upstream_that_stays_silent_is_a_504(alice_client, remote_settings, upstream):
    remote_settings.LLM_REMOTE_READ_TIMEOUT = 0.2
    remote_settings.LLM_REMOTE_MAX_RETRIES = 0
    services.provider_activate(provider="openai")
    upstream.script("POST", "/v1/chat/completions", Reply(delay_before=60))  # silent until teardown stops it
    response = alice_client.post("/api/v1/predict", {"prompt": "hello"}, format="json")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


@pytest.mark.django_db(transaction=True)
async def test_a_stream_cut_midway_ends_in_an_error_after_the_text_and_is_recorded(remote_settings, upstream):
    provider = build_provider(ProviderSpec("openai", "llama-test"))
    provider.load()
    get_engine().set(provider)
    dropped = sse_reply(openai_sse(["Hel", "lo", "never"]), cut=True)
    dropped.chunks = dropped.chunks[:3]
    upstream.script("POST", "/v1/chat/completions", dropped)
    received = []
    try:
        with pytest.raises(ApplicationError) as caught:
            async for event in services.complete_stream(CompletionRequest(prompt="hello")):
                received.append(event)
    finally:
        provider.close()
    assert [e.text for e in received if isinstance(e, TextDelta)] == ["Hel", "lo"]
    assert (caught.value.status, caught.value.code) == (502, "upstream_disconnected")
    record = await InferenceRecord.objects.aget()
    assert record.status == "error"
    assert "broke off" in record.error


def test_starting_with_a_remote_provider_that_is_not_configured_is_a_system_check_warning(settings):
    from inference.checks import remote_provider_check

    settings.LLM_PROVIDER = "anthropic"
    settings.ANTHROPIC_API_KEY = ""
    [warning] = remote_provider_check(None)
    assert warning.id == "inference.W001"
    assert warning.msg == "LLM_PROVIDER=anthropic is not configured: set ANTHROPIC_API_KEY"
    settings.ANTHROPIC_API_KEY = KEY
    settings.LLM_REMOTE_READ_TIMEOUT = 0
    assert [m.id for m in remote_provider_check(None)] == ["inference.E004"]
