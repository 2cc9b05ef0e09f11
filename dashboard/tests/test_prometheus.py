"""GET /metrics: Prometheus text that parses, for staff or the scrape token only."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.services import api_key_create
from inference.engine import get_engine
from inference.providers.base import Provider

pytestmark = pytest.mark.django_db

TOKEN = "scrape-" + "x" * 40


def families(response) -> dict:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def test_it_exposes_parseable_counters_histograms_and_live_figures(staff_client):
    staff_client.get("/healthz")
    staff_client.get("/api/v1/conversations/7")
    found = families(staff_client.get("/metrics"))
    for name in (
        "llmsite_http_requests",
        "llmsite_http_request_duration_seconds",
        "llmsite_response_cache_hits",
        "llmsite_response_cache_misses",
        "llmsite_model_state",
        "llmsite_model_loaded",
        "llmsite_request_metrics_buffered",
    ):
        assert name in found, name
    requests = {
        (s.labels["endpoint"], s.labels["method"], s.labels["status"])
        for s in found["llmsite_http_requests"].samples
        if s.name == "llmsite_http_requests_total"
    }
    assert ("/healthz", "GET", "200") in requests
    assert ("/api/v1/conversations/<int:conversation_id>", "GET", "404") in requests
    assert not any("/7" in endpoint for endpoint, _, _ in requests)
    assert found["llmsite_http_request_duration_seconds"].type == "histogram"
    states = {s.labels["state"]: s.value for s in found["llmsite_model_state"].samples}
    assert set(states) == {"idle", "loading", "ready", "failed"} and sum(states.values()) == 1


def test_anonymous_callers_get_401_in_the_json_error_shape(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_signed_in_users_who_are_not_staff_get_403(alice_client, alice):
    assert alice_client.get("/metrics").status_code == 403
    jwt = APIClient(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(alice)}")
    response = jwt.get("/metrics")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_staff_may_use_a_jwt_or_an_api_key(staff):
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(staff)}").get("/metrics").status_code == 200
    _, key = api_key_create(user=staff, name="prometheus")
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {key}").get("/metrics").status_code == 200


def test_the_scrape_token_works_and_a_wrong_one_does_not(settings, client):
    settings.METRICS_TOKEN = TOKEN
    families(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"))
    wrong = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}y")
    assert wrong.status_code == 401
    assert "error" in wrong.json()
    # The token opens /metrics only, not the staff API.
    assert client.get("/api/v1/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 401


def test_without_a_configured_token_no_bearer_string_opens_it(settings, client):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 401


def test_it_counts_tokens_generated_from_usage_records(staff_client):
    from inference.models import InferenceRecord

    InferenceRecord.objects.create(
        provider="hf", model="count-model", completion_tokens=11, prompt_tokens=3, latency_ms=50, ttft_ms=5
    )
    found = families(staff_client.get("/metrics"))
    tokens = {
        (s.labels["model"], s.labels["kind"]): s.value
        for s in found["llmsite_inference_tokens"].samples
        if s.name == "llmsite_inference_tokens_total"
    }
    assert tokens[("count-model", "completion")] == 11
    assert tokens[("count-model", "prompt")] == 3


class RunnerLike(Provider):
    """A loaded local model that answers `status()` as a runner process does: its memory and queue."""

    name = "hf"

    def status(self) -> dict:
        return {"state": "ready", "rss_mb": 150.0, "running": 1, "waiting": 2}


@pytest.fixture
def pool(settings, tmp_path):
    """Two local models, pool-a (the default) loaded and pool-b not."""
    for name in ("pool-a", "pool-b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    settings.MODELS_DIR = tmp_path
    settings.LLM_PROVIDER, settings.LLM_MODEL, settings.DEVICE = "hf", "pool-a", "cpu"
    engine = get_engine()
    engine.set(RunnerLike("pool-a"))
    yield engine
    engine.reset()


def test_it_exposes_each_models_load_memory_and_queue(staff_client, pool):
    found = families(staff_client.get("/metrics"))

    def by_model(name: str) -> dict[str, float]:
        return {s.labels["model"]: s.value for s in found[name].samples}

    assert by_model("llmsite_model_loaded") == {"pool-a": 1.0, "pool-b": 0.0}
    assert by_model("llmsite_model_memory_bytes") == {"pool-a": 150 * 2**20}  # known for loaded models only
    assert by_model("llmsite_model_queue") == {"pool-a": 3.0, "pool-b": 0.0}  # running + waiting
    assert found["llmsite_model_loaded"].type == "gauge"
