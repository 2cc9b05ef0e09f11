"""Promotion and rollback: the served default changes through provider_activate, every change is logged."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from evaluation.models import Evaluation, Promotion
from inference.models import ProviderConfig

pytestmark = pytest.mark.django_db

SAMPLING = {"prompt": "What is llmsite?", "temperature": 0, "max_new_tokens": 2}


@pytest.fixture
def three_models(eval_settings, models_dir, tiny_models):
    (models_dir / "tiny-c").symlink_to(tiny_models / "tiny-a", target_is_directory=True)
    return eval_settings


def served(client) -> str:
    """The model that answers a request naming none: the served default."""
    response = client.post("/api/v1/predict", SAMPLING, format="json")
    assert response.status_code == 200, response.content
    return response.json()["model"]


def test_promote_then_roll_back_changes_the_served_default_and_logs_both(
    staff_client, alice_client, staff, eval_settings
):
    assert served(alice_client) == "tiny-a"
    evaluation = Evaluation.objects.create(model="tiny-b", baseline="tiny-a", status="succeeded")

    response = staff_client.post(
        "/api/v1/models/tiny-b/promote",
        {"reason": "better on the questions", "evaluation": evaluation.pk},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["model"], body["evaluation"], body["user"]) == (
        "promote",
        "tiny-b",
        evaluation.pk,
        "sam",
    )
    assert body["previous"] == {"provider": "hf", "model": "tiny-a", "device": "cpu"}
    assert ProviderConfig.objects.get(active=True).model == "tiny-b"
    assert served(alice_client) == "tiny-b"

    log = staff_client.get("/api/v1/models/promotions").json()
    assert log["default"]["id"] == "tiny-b"
    assert log["rollback_to"] == {"provider": "hf", "model": "tiny-a", "device": "cpu"}

    back = staff_client.post("/api/v1/models/rollback", {"reason": "users prefer the old one"}, format="json")
    assert back.status_code == 201, back.content
    assert (back.json()["kind"], back.json()["model"], back.json()["reverts"]) == ("rollback", "tiny-a", body["id"])
    assert served(alice_client) == "tiny-a"

    assert staff_client.post("/api/v1/models/rollback", {}, format="json").status_code == 409
    log = staff_client.get("/api/v1/models/promotions").json()
    assert [(row["kind"], row["model"]) for row in log["results"]] == [("rollback", "tiny-a"), ("promote", "tiny-b")]
    assert log["rollback_to"] is None


def test_rollbacks_undo_promotions_newest_first(staff_client, three_models):
    for model in ("tiny-b", "tiny-c"):
        assert staff_client.post(f"/api/v1/models/{model}/promote", {"reason": "r"}, format="json").status_code == 201
    steps = [staff_client.post("/api/v1/models/rollback", {}, format="json") for _ in range(3)]
    assert [s.status_code for s in steps] == [201, 201, 409]
    assert [s.json()["model"] for s in steps[:2]] == ["tiny-b", "tiny-a"]
    assert ProviderConfig.objects.get(active=True).model == "tiny-a"
    assert steps[2].json()["error"]["message"] == "there is no promotion to roll back"


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/v1/models/tiny-b/promote", {}, 400, "reason"),
        ("/api/v1/models/tiny-b/promote", {"reason": "   "}, 400, "reason"),
        ("/api/v1/models/tiny-b/promote", {"reason": "x" * 1001}, 400, "reason"),
        ("/api/v1/models/nope/promote", {"reason": "r"}, 400, "model"),
        ("/api/v1/models/tiny-b/promote", {"reason": "r", "evaluation": 999}, 400, "evaluation"),
        ("/api/v1/models/tiny-b/promote", {"reason": "r", "evaluation": 0}, 400, "evaluation"),
        ("/api/v1/models/tiny-b/promote", {"reason": "r", "other": 1}, 400, "other"),
        ("/api/v1/models/tiny-a/promote", {"reason": "r"}, 409, "model"),
        ("/api/v1/models/rollback", {}, 409, None),
        ("/api/v1/models/rollback", {"reason": 5}, 400, "reason"),
    ],
)
def test_bad_promotions_change_nothing(staff_client, eval_settings, path, body, status, field):
    response = staff_client.post(path, body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"].get("field") == field
    assert not Promotion.objects.exists()
    assert not ProviderConfig.objects.filter(active=True).exclude(model="tiny-a").exists()


def test_an_evaluation_of_other_models_is_no_evidence(staff_client, eval_settings):
    evaluation = Evaluation.objects.create(model="tiny-a", status="succeeded")
    response = staff_client.post(
        "/api/v1/models/tiny-b/promote", {"reason": "r", "evaluation": evaluation.pk}, format="json"
    )
    assert response.status_code == 400
    assert "did not evaluate tiny-b" in response.json()["error"]["message"]


def test_the_promote_command_writes_the_row_every_server_serves_and_rolls_back(eval_settings, capsys):
    call_command("promote", "tiny-b", "--reason", "from the terminal")
    assert ProviderConfig.objects.get(active=True).model == "tiny-b"
    promotion = Promotion.objects.get()
    assert (promotion.kind, promotion.reason, promotion.previous_model) == ("promote", "from the terminal", "tiny-a")
    assert "promoted tiny-b (was tiny-a)" in capsys.readouterr().out

    call_command("promote", "--rollback")
    assert ProviderConfig.objects.get(active=True).model == "tiny-a"
    with pytest.raises(CommandError, match="no promotion to roll back"):
        call_command("promote", "--rollback")
    with pytest.raises(CommandError, match="reason"):
        call_command("promote", "tiny-b")
    with pytest.raises(CommandError, match="not both"):
        call_command("promote", "tiny-b", "--rollback")
