"""Replicas in the site: several OPENAI_BASE_URLs, their health in /api/v1/models and /metrics, the 503."""

from __future__ import annotations

import pytest

from inference import registry
from inference.providers.replicas import ReplicaProvider
from inference.tests.fake_upstream import FakeUpstream, closed_port_url, json_reply, openai_sse, sse_reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_upstream():
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def replica_settings(settings, upstream, second_upstream):
    dead = closed_port_url().replace("http://", "http://admin:s3cret@")
    settings.OPENAI_BASE_URL = f"{dead}/v1, {upstream.url}/v1,{second_upstream.url}/v1"
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_API_TYPE = "openai"
    settings.OPENAI_MODEL = "llama"
    settings.LLM_REMOTE_READ_TIMEOUT = 5
    settings.UPSTREAM_COOLDOWN_SECONDS = 60
    registry._model_lists.clear()
    yield settings
    registry._model_lists.clear()


def test_several_base_urls_build_one_provider_with_a_replica_each(replica_settings, upstream, second_upstream):
    provider = registry.build_provider(registry.ProviderSpec("openai", "llama"))
    try:
        assert isinstance(provider, ReplicaProvider)
        urls = [h.url for h in provider.health()]
        assert urls[1:] == [f"{upstream.url}/v1", f"{second_upstream.url}/v1"]
        assert urls[0].startswith("http://127.0.0.1:") and "admin" not in urls[0]
        assert all(p.http.max_retries == 0 for p in provider.providers)  # another replica is the retry
    finally:
        provider.close()


def test_a_dead_replica_is_passed_over_and_shown_out_of_service_without_its_credentials(
    replica_settings, alice_client, staff_client, upstream, second_upstream
):
    for server in (upstream, second_upstream):
        server.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Fine"])))
        server.script("GET", "/v1/models", json_reply(200, {"object": "list", "data": [{"id": "llama"}]}))
    body = {"prompt": "hello", "max_new_tokens": 8, "model": "openai/llama"}
    answers = [alice_client.post("/api/v1/predict", body, format="json") for _ in range(2)]
    assert [(a.status_code, a.json()["text"]) for a in answers] == [(200, "Fine"), (200, "Fine")]

    rows = {row["id"]: row for row in alice_client.get("/api/v1/models").json()["data"]}
    replicas = rows["openai/llama"]["replicas"]
    assert [r["state"] for r in replicas] == ["cooling_down", "up", "up"]
    assert replicas[0]["url"].startswith("http://127.0.0.1:") and "s3cret" not in str(rows)
    assert replicas[0]["healthy"] is False and replicas[0]["failures"] == 1
    assert "could not connect" in replicas[0]["last_error"]
    assert all(r["in_flight"] == 0 for r in replicas)

    metrics = staff_client.get("/metrics").content.decode()
    dead, live = replicas[0]["url"], replicas[1]["url"]
    assert f'llmsite_upstream_up{{model="openai/llama",replica="{dead}"}} 0.0' in metrics
    assert f'llmsite_upstream_up{{model="openai/llama",replica="{live}"}} 1.0' in metrics
    assert f'llmsite_upstream_failures_total{{model="openai/llama",replica="{dead}"}} 1.0' in metrics
    assert f'llmsite_upstream_in_flight{{model="openai/llama",replica="{live}"}} 0.0' in metrics
    assert "s3cret" not in metrics


def test_with_every_replica_out_a_request_is_a_503_with_retry_after(replica_settings, alice_client, upstream):
    replica_settings.OPENAI_BASE_URL = f"{closed_port_url()}/v1,{upstream.url}/v1"
    upstream.script("POST", "/v1/chat/completions", json_reply(502, {"error": {"message": "bad gateway"}}))
    body = {"prompt": "hello", "max_new_tokens": 8, "model": "openai/llama"}
    response = alice_client.post("/api/v1/predict", body, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert "every replica of llama is out of service" in response.json()["error"]["message"]
    assert response["Retry-After"] == "60"
    streamed = alice_client.post("/api/v1/predict", {**body, "stream": True}, format="json")
    assert streamed.status_code == 503 and streamed["Retry-After"]
