"""The evaluation API: staff only, every input bounded (400 naming the field), a queued row whose job runs it."""

from __future__ import annotations

import pytest

from evaluation.models import Evaluation
from jobs.testing import run_jobs


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/evaluations"),
        ("post", "/api/v1/evaluations"),
        ("get", "/api/v1/evaluations/1"),
        ("post", "/api/v1/evaluations/1/cancel"),
        ("post", "/api/v1/models/tiny-b/promote"),
        ("post", "/api/v1/models/rollback"),
        ("get", "/api/v1/models/promotions"),
    ],
)
def test_it_is_for_staff_only(alice_client, api_client, eval_settings, method, path):
    assert getattr(alice_client, method)(path, {}, format="json").status_code == 403
    assert getattr(api_client, method)(path, {}, format="json").status_code in (401, 403)
    assert not Evaluation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({}, "model", "required"),
        ({"model": "no-such-model"}, "model", "does not exist"),
        ({"model": 7}, "model", "string"),
        ({"model": "x" * 501}, "model", "500"),
        ({"model": "../etc"}, "model", "does not exist"),
        ({"model": "tiny-b", "against": "nope"}, "against", "does not exist"),
        ({"model": "tiny-b", "against": "tiny-b"}, "against", "another model"),
        ({"model": "tiny-b", "judge": "openai/gpt-x"}, "judge", "not configured"),
        ({"model": "tiny-b", "limit": 0}, "limit", "1 to"),
        ({"model": "tiny-b", "limit": 10_000}, "limit", "1 to"),
        ({"model": "tiny-b", "limit": "many"}, "limit", "integer"),
        ({"model": "tiny-b", "max_tokens": 100_000}, "max_tokens", "max_tokens"),
        ({"model": "tiny-b", "colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(staff_client, eval_settings, body, field, says):
    response = staff_client.post("/api/v1/evaluations", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert says in error["message"]
    assert not Evaluation.objects.exists()


@pytest.mark.django_db
def test_too_many_active_evaluations_is_a_409(staff_client, eval_settings):
    eval_settings.EVALUATION_MAX_ACTIVE = 1
    assert staff_client.post("/api/v1/evaluations", {"model": "tiny-b"}, format="json").status_code == 202
    refused = staff_client.post("/api/v1/evaluations", {"model": "tiny-b"}, format="json")
    assert refused.status_code == 409
    assert "EVALUATION_MAX_ACTIVE" in refused.json()["error"]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/v1/evaluations/999", "/api/v1/evaluations/" + "9" * 18, "/api/v1/evaluations/" + "9" * 30]
)
def test_an_unknown_evaluation_is_a_404(staff_client, path):
    assert staff_client.get(path).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["limit=0", "limit=100000", "offset=-1", "kind=bogus", "status=bogus"])
def test_bad_query_parameters_are_a_400(staff_client, eval_settings, query):
    evaluation = Evaluation.objects.create(model="tiny-b")
    path = "/api/v1/evaluations" if query.startswith("status") else f"/api/v1/evaluations/{evaluation.pk}"
    assert staff_client.get(f"{path}?{query}").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_a_started_evaluation_is_queued_then_its_job_runs_it(staff_client, staff, eval_settings):
    response = staff_client.post("/api/v1/evaluations", {"model": "tiny-b", "limit": 2}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert response["Location"] == f"/api/v1/evaluations/{body['id']}"
    assert (body["status"], body["model"], body["baseline"], body["created_by"]) == (
        "queued",
        "tiny-b",
        "tiny-a",
        "sam",
    )
    assert body["options"] == {"limit": 2, "max_tokens": 8}
    assert body["task_id"]

    listed = staff_client.get("/api/v1/evaluations").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]

    run_jobs("training")

    detail = staff_client.get(f"/api/v1/evaluations/{body['id']}").json()
    assert detail["status"] == "succeeded", detail["error"]
    assert (detail["done"], detail["total"], detail["progress"]) == (6, 6, 1.0)
    assert set(detail["metrics"]["models"]) == {"tiny-a", "tiny-b"}
    assert detail["examples"]["count"] == 4 + 2 * 5  # 2 answers per model, 5 held-out losses per model
    qa = staff_client.get(f"/api/v1/evaluations/{body['id']}?kind=qa&limit=1&offset=1").json()["examples"]
    assert (qa["count"], len(qa["results"]), qa["results"][0]["kind"]) == (4, 1, "qa")

    # Finished: cancelling is a conflict.
    assert staff_client.post(f"/api/v1/evaluations/{body['id']}/cancel").status_code == 409


@pytest.mark.django_db(transaction=True)
def test_a_queued_evaluation_cancelled_is_never_run(staff_client, eval_settings):
    created = staff_client.post("/api/v1/evaluations", {"model": "tiny-b", "limit": 1}, format="json").json()
    cancelled = staff_client.post(f"/api/v1/evaluations/{created['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    run_jobs("training")
    assert Evaluation.objects.get(pk=created["id"]).status == "cancelled"
    assert not Evaluation.objects.get(pk=created["id"]).examples.exists()
