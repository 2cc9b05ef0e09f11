import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_it_answers_healthz_without_auth(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_reports_ready_with_each_check_by_name(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "provider", "models", "embeddings"}
    assert all(check["ok"] for check in body["checks"].values())


def test_it_says_which_check_fails_when_the_model_is_not_prepared(client, tmp_path):
    with override_settings(MODELS_DIR=tmp_path):
        response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["provider"]["ok"] is False
    assert "prepare_models" in body["checks"]["provider"]["detail"]
    assert body["checks"]["database"]["ok"] is True


def test_it_names_an_unknown_embedding_model(client):
    with override_settings(EMBEDDING_MODEL="no-such-encoder"):
        body = client.get("/readyz").json()
    assert body["checks"]["embeddings"]["ok"] is False
    assert "no-such-encoder" in body["checks"]["embeddings"]["detail"]


def test_a_crashing_check_is_a_failing_check_not_a_500(client):
    with override_settings(READINESS_CHECKS={"broken": "llmsite.tests.test_health.explode"}):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broken"] == {"ok": False, "detail": "RuntimeError: boom"}


def explode():
    raise RuntimeError("boom")
