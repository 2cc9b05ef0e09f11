"""GET /api/v1/usage and PUT /api/v1/usage/limits/{user_id}: the contract clients and the usage page read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import api_key_create
from usage.services import Meter, ledger_add, limits_set

pytestmark = pytest.mark.django_db


def spend(user, *, model="m", prompt=10, completion=5, api_key=None, at=None):
    ledger_add(
        user=user,
        api_key=api_key,
        model=model,
        kind="completion",
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=0,
        at=at,
    )


def test_a_new_user_sees_zero_usage_and_their_remaining_quota(alice_client, settings, usage_clock):
    settings.USAGE_DEFAULT_TOKENS_PER_DAY = 5000
    body = alice_client.get("/api/v1/usage").json()
    assert set(body) >= {"totals", "limits", "by_day", "by_model", "by_key"}
    assert body["totals"]["requests"] == 0 and body["totals"]["cost"] == 0
    (limit,) = body["limits"]
    assert {k: limit[k] for k in ("kind", "limit", "used", "remaining")} == {
        "kind": "tokens_per_day",
        "limit": 5000,
        "used": 0,
        "remaining": 5000,
    }
    assert limit["resets_at"].endswith("T00:00:00Z")


def test_usage_is_broken_down_by_day_model_and_key(alice, alice_client, bob, usage_clock):
    key, _secret = api_key_create(user=alice, name="laptop")
    now = timezone.now()
    spend(alice, model="a", at=now)
    spend(alice, model="b", api_key=key, prompt=100, completion=50, at=now)
    spend(alice, model="a", at=now - timedelta(days=2))
    spend(bob, model="a", prompt=999, at=now)
    Meter(user=alice).reserve(model="a", prompt_tokens=1, max_tokens=1)  # running: not in the ledger yet

    body = alice_client.get("/api/v1/usage").json()
    assert body["totals"]["requests"] == 3
    assert body["totals"]["total_tokens"] == 15 + 150 + 15
    assert [(row["model"], row["requests"]) for row in body["by_model"]] == [("b", 1), ("a", 2)]
    assert {row["key"]: row["name"] for row in body["by_key"]} == {key.pk: "laptop", None: ""}
    assert len(body["by_day"]) == 2

    recent = alice_client.get("/api/v1/usage", {"since": (now - timedelta(days=1)).isoformat()}).json()
    assert recent["totals"]["requests"] == 2


def test_staff_read_anyones_usage_and_users_only_their_own(alice, alice_client, bob, staff_client):
    spend(bob, prompt=7, completion=0)
    assert staff_client.get("/api/v1/usage", {"user": bob.pk}).json()["totals"]["prompt_tokens"] == 7
    assert staff_client.get("/api/v1/usage", {"all": "true"}).json()["totals"]["requests"] == 1
    refused = alice_client.get("/api/v1/usage", {"user": bob.pk})
    assert refused.status_code == 403
    assert staff_client.get("/api/v1/usage", {"user": 999999}).status_code == 404


@pytest.mark.parametrize(
    "query",
    [{"since": "yesterday"}, {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, {"user": "-1"}],
)
def test_bad_queries_are_400s_naming_the_field(alice_client, query):
    response = alice_client.get("/api/v1/usage", query)
    assert response.status_code == 400
    assert response.json()["error"]["field"] in query


def test_staff_set_and_clear_a_users_limits(alice, staff_client, alice_client, settings):
    settings.USAGE_DEFAULT_REQUESTS_PER_MINUTE = 30
    url = f"/api/v1/usage/limits/{alice.pk}"
    body = staff_client.put(url, {"tokens_per_day": 2000, "spend_per_month": "12.5"}, format="json").json()
    assert body["own"] == {"tokens_per_day": 2000, "spend_per_month": 12.5}
    assert {limit["kind"] for limit in body["limits"]} == {"tokens_per_day", "spend_per_month", "requests_per_minute"}
    cleared = staff_client.put(url, {"tokens_per_day": None}, format="json").json()
    assert cleared["own"] == {"spend_per_month": 12.5}
    assert staff_client.put(url, {"tokens_per_day": -1}, format="json").status_code == 400
    assert staff_client.put(url, {"tokens_per_hour": 5}, format="json").status_code == 400
    assert alice_client.put(url, {"tokens_per_day": 10**9}, format="json").status_code == 403
    assert staff_client.put("/api/v1/usage/limits/999999", {}, format="json").status_code == 404


def test_a_key_sees_its_own_limits_beside_its_users(alice, usage_clock):
    from rest_framework.test import APIClient

    key, secret = api_key_create(user=alice, name="batch")
    limits_set(api_key=key, values={"requests_per_minute": 10})
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    limits = client.get("/api/v1/usage").json()["limits"]
    assert [(limit["scope"], limit["kind"], limit["limit"]) for limit in limits] == [("key", "requests_per_minute", 10)]
