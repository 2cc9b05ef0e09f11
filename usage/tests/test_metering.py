"""Reserve, settle, release: limits checked before the work, the ledger written after, exact under concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import close_old_connections

from accounts.services import api_key_create
from usage import selectors
from usage.models import ModelPrice, UsageBucket, UsageCounter
from usage.services import Meter, ModelNotAllowed, QuotaExceeded, limits_for, limits_set, prices_changed

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_prices():
    prices_changed()
    yield
    prices_changed()


def used(kind: str) -> int:
    return sum(UsageCounter.objects.filter(kind=kind).values_list("used", flat=True))


def test_a_reservation_holds_the_maximum_and_settles_to_the_real_usage(alice, usage_clock):
    limits_set(user=alice, values={"tokens_per_day": 1000, "requests_per_minute": 5})
    meter = Meter(user=alice)
    reservation = meter.reserve(model="m", prompt_tokens=30, max_tokens=100)
    assert used("tokens_per_day") == 130
    assert used("requests_per_minute") == 1
    reservation.settle(prompt_tokens=30, completion_tokens=12)
    assert used("tokens_per_day") == 42
    assert used("requests_per_minute") == 1
    row = UsageBucket.objects.get()
    assert (row.user, row.model, row.requests, row.prompt_tokens, row.completion_tokens) == (alice, "m", 1, 30, 12)
    reservation.settle(prompt_tokens=30, completion_tokens=12)  # settling twice changes nothing
    assert UsageBucket.objects.get().requests == 1


def test_the_request_that_would_cross_a_limit_is_refused_with_the_limit_and_its_reset(alice, usage_clock):
    limits_set(user=alice, values={"tokens_per_day": 2000})
    Meter(user=alice).reserve(model="m", prompt_tokens=1000, max_tokens=900).settle(
        prompt_tokens=1000, completion_tokens=900
    )
    with pytest.raises(QuotaExceeded) as refused:
        Meter(user=alice).reserve(model="m", prompt_tokens=50, max_tokens=100)
    error = refused.value
    assert (error.status, error.code) == (429, "quota_exceeded")
    assert (error.details["limit"], error.details["limit_value"], error.details["used"]) == (
        "tokens_per_day",
        2000,
        1900,
    )
    midnight = (usage_clock["now"] + timedelta(days=1)).replace(hour=0, minute=0, second=0)
    assert error.details["resets_at"] == midnight.isoformat().replace("+00:00", "Z")
    assert int(error.headers["Retry-After"]) == int((midnight - usage_clock["now"]).total_seconds())
    assert "2000 tokens per day" in error.message
    assert used("tokens_per_day") == 1900  # the refused request holds nothing
    # What still fits is admitted.
    Meter(user=alice).reserve(model="m", prompt_tokens=50, max_tokens=50)


def test_a_refusal_by_one_limit_holds_nothing_on_the_others(alice, usage_clock):
    limits_set(user=alice, values={"requests_per_minute": 100, "tokens_per_minute": 100})
    with pytest.raises(QuotaExceeded) as refused:
        Meter(user=alice).reserve(model="m", prompt_tokens=60, max_tokens=60)
    assert refused.value.details["limit"] == "tokens_per_minute"
    assert used("requests_per_minute") == 0


def test_a_released_reservation_gives_its_tokens_back_and_writes_no_ledger(alice, usage_clock):
    limits_set(user=alice, values={"tokens_per_day": 1000, "requests_per_minute": 10})
    Meter(user=alice).reserve(model="m", prompt_tokens=100, max_tokens=400).release()
    assert used("tokens_per_day") == 0
    assert used("requests_per_minute") == 1  # an admitted request still counts as a request
    assert not UsageBucket.objects.exists()


def test_windows_roll_over(alice, usage_clock):
    limits_set(user=alice, values={"tokens_per_day": 100})
    Meter(user=alice).reserve(model="m", prompt_tokens=50, max_tokens=50).settle(prompt_tokens=50, completion_tokens=50)
    with pytest.raises(QuotaExceeded):
        Meter(user=alice).reserve(model="m", prompt_tokens=1, max_tokens=1)
    usage_clock["now"] += timedelta(days=1)
    Meter(user=alice).reserve(model="m", prompt_tokens=1, max_tokens=1)


def test_site_defaults_apply_to_users_but_not_staff_and_a_users_own_limit_replaces_them(
    alice, bob, staff, settings, usage_clock
):
    settings.USAGE_DEFAULT_TOKENS_PER_DAY = 10
    settings.USAGE_DEFAULT_REQUESTS_PER_MINUTE = 3
    with pytest.raises(QuotaExceeded):
        Meter(user=alice).reserve(model="m", prompt_tokens=5, max_tokens=6)
    Meter(user=staff).reserve(model="m", prompt_tokens=5, max_tokens=6)
    limits_set(user=bob, values={"tokens_per_day": 1000})
    kinds = {limit.kind: limit.value for limit in limits_for(bob)}
    assert kinds == {"tokens_per_day": 1000, "requests_per_minute": 3}
    Meter(user=bob).reserve(model="m", prompt_tokens=5, max_tokens=6)


def test_a_keys_limits_hold_on_top_of_its_users(alice, usage_clock):
    key, _secret = api_key_create(user=alice, name="script")
    limits_set(api_key=key, values={"requests_per_minute": 1})
    Meter(user=alice, api_key=key).reserve(model="m", prompt_tokens=1, max_tokens=1)
    with pytest.raises(QuotaExceeded) as refused:
        Meter(user=alice, api_key=key).reserve(model="m", prompt_tokens=1, max_tokens=1)
    assert "this API key's limit" in refused.value.message
    Meter(user=alice).reserve(model="m", prompt_tokens=1, max_tokens=1)  # the user, logged in, is not that key


def test_a_key_with_a_model_list_may_call_only_those_models(alice):
    key, _secret = api_key_create(user=alice, models=["tiny-a"])
    meter = Meter(user=alice, api_key=key)
    meter.check_model("tiny-a")
    with pytest.raises(ModelNotAllowed) as refused:
        meter.check_model("tiny-b")
    assert refused.value.status == 403
    assert "'tiny-b'" in refused.value.message and "tiny-a" in refused.value.message


def test_spend_comes_from_the_price_table_and_a_budget_refuses_what_could_cross_it(alice, settings, usage_clock):
    settings.USAGE_PRICES = {"remote": [2.0, 10.0]}  # per million tokens
    ModelPrice.objects.create(model="priced", input_per_million=Decimal("1000"), output_per_million=Decimal("3000"))
    meter = Meter(user=alice)
    meter.reserve(model="remote", prompt_tokens=1000, max_tokens=100).settle(prompt_tokens=1000, completion_tokens=100)
    meter.reserve(model="local", prompt_tokens=1000, max_tokens=100).settle(prompt_tokens=1000, completion_tokens=100)
    costs = dict(UsageBucket.objects.values_list("model", "cost_micros"))
    assert costs == {"remote": 1000 * 2 + 100 * 10, "local": 0}  # micro-units: 0.003 in all

    limits_set(user=alice, values={"spend_per_day": Decimal("1.00")})
    # 200 prompt + 300 output tokens at 1000/3000 per million hold 0.2 + 0.9 = 1.1: more than the budget.
    with pytest.raises(QuotaExceeded) as refused:
        meter.reserve(model="priced", prompt_tokens=200, max_tokens=300)
    assert refused.value.details["limit"] == "spend_per_day"
    meter.reserve(model="priced", prompt_tokens=200, max_tokens=200).settle(prompt_tokens=200, completion_tokens=10)
    assert used("spend_per_day") == 3000 + 200 * 1000 + 10 * 3000  # the day's earlier spend counts too


def test_a_cached_answer_counts_its_tokens_but_costs_nothing(alice, settings, usage_clock):
    settings.USAGE_PRICES = {"remote": [2.0, 10.0]}
    limits_set(user=alice, values={"tokens_per_day": 100})
    Meter(user=alice).reserve(model="remote", prompt_tokens=40, max_tokens=40, cached=True).settle(
        prompt_tokens=40, completion_tokens=40
    )
    row = UsageBucket.objects.get()
    assert (row.cached_requests, row.prompt_tokens + row.completion_tokens, row.cost_micros) == (1, 80, 0)
    assert used("tokens_per_day") == 80


def test_the_ledger_adds_up_by_hour_user_key_and_model(alice, bob, usage_clock):
    key, _secret = api_key_create(user=alice, name="ci")
    for _ in range(3):
        Meter(user=alice, api_key=key).reserve(model="a", prompt_tokens=1, max_tokens=2).settle(
            prompt_tokens=1, completion_tokens=2
        )
    Meter(user=alice).reserve(model="b", prompt_tokens=5, max_tokens=5).settle(
        prompt_tokens=5, completion_tokens=0, status="cancelled"
    )
    Meter(user=bob).reserve(model="a", prompt_tokens=7, max_tokens=1).settle(prompt_tokens=7, completion_tokens=1)
    assert UsageBucket.objects.count() == 3  # one row per (hour, user, key, model), not per request
    mine = selectors.summary(user=alice)
    assert mine["totals"] | {"cost": 0} == {
        "requests": 4,
        "cached_requests": 0,
        "cancelled_requests": 1,
        "failed_requests": 0,
        "prompt_tokens": 8,
        "completion_tokens": 6,
        "total_tokens": 14,
        "cost": 0,
    }
    assert [(row["model"], row["requests"]) for row in mine["by_model"]] == [("b", 1), ("a", 3)]
    assert {row["key"]: row["requests"] for row in mine["by_key"]} == {key.pk: 3, None: 1}


@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_never_push_a_counter_past_its_limit(alice, usage_clock):
    limits_set(user=alice, values={"tokens_per_day": 1000})
    admitted, refused = [], []
    start = threading.Barrier(20)

    def one() -> None:
        try:
            start.wait()
            Meter(user=alice).reserve(model="m", prompt_tokens=50, max_tokens=50)
            admitted.append(1)
        except QuotaExceeded:
            refused.append(1)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(admitted), len(refused)) == (10, 10)
    assert used("tokens_per_day") == 1000


def test_pruning_drops_past_minutes_at_once_and_other_windows_after_forty_days(alice, usage_clock):
    from usage.services import counters_prune

    usage_clock["now"] = usage_clock["now"].replace(hour=10)  # two hours on is the same day
    limits_set(user=alice, values={"requests_per_minute": 10, "tokens_per_day": 1000})
    Meter(user=alice).reserve(model="m", prompt_tokens=1, max_tokens=1)
    usage_clock["now"] += timedelta(hours=2)
    Meter(user=alice).reserve(model="m", prompt_tokens=1, max_tokens=1)
    assert counters_prune(before=usage_clock["now"] - timedelta(days=40)) == 1  # the minute two hours ago
    assert sorted(UsageCounter.objects.values_list("kind", flat=True)) == ["requests_per_minute", "tokens_per_day"]


def test_a_limit_set_during_the_day_counts_what_was_used_that_day_already(alice, usage_clock):
    Meter(user=alice).reserve(model="m", prompt_tokens=900, max_tokens=900).settle(
        prompt_tokens=900, completion_tokens=800
    )
    limits_set(user=alice, values={"tokens_per_day": 2000, "tokens_per_minute": 1000})
    with pytest.raises(QuotaExceeded) as refused:
        Meter(user=alice).reserve(model="m", prompt_tokens=100, max_tokens=250)
    assert (refused.value.details["limit"], refused.value.details["used"]) == ("tokens_per_day", 1700)
    meter = Meter(user=alice)
    meter.reserve(model="m", prompt_tokens=100, max_tokens=200).settle(prompt_tokens=100, completion_tokens=20)
    assert {state.kind: state.remaining for state in meter.states} == {"tokens_per_day": 180, "tokens_per_minute": 880}
    assert meter.headers()["x-ratelimit-remaining-tokens"] == "180"
