"""Reads of the ledger: totals and breakdowns for GET /api/v1/usage, the usage page, the dashboard and reports.

Everything is summed in the database over hourly buckets, so a month of a busy site is a few
thousand rows at most, and every result is bounded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from usage.models import UsageBucket
from usage.windows import from_micros

SUMS = ("requests", "cached_requests", "cancelled_requests", "failed_requests", "prompt_tokens", "completion_tokens")
MAX_ROWS = 100  # per breakdown
DEFAULT_SPAN = timedelta(days=30)
GROUPS = {"user": ("user_id", "user__username"), "key": ("api_key_id", "api_key__name"), "model": ("model",)}


def _sums() -> dict[str, Any]:
    aggregates = {name: Coalesce(Sum(name), 0) for name in SUMS}
    aggregates["cost_micros"] = Coalesce(Sum("cost_micros"), 0)
    return aggregates


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    """A summed row as clients read it: totals in tokens, cost in the currency unit."""
    out = {k: v for k, v in row.items() if k != "cost_micros"}
    out["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    out["cost"] = float(from_micros(row["cost_micros"]))
    return out


def buckets(
    *, since: datetime, until: datetime, user: Any = None, api_key: Any = None, model: str | None = None
) -> QuerySet[UsageBucket]:
    """The ledger rows of [since, until), optionally of one user, key or model (hours are whole: a bucket counts
    when its hour starts in the span)."""
    query = Q(hour__gte=since.replace(minute=0, second=0, microsecond=0), hour__lt=until)
    if user is not None:
        query &= Q(user=user)
    if api_key is not None:
        query &= Q(api_key=api_key)
    if model:
        query &= Q(model=model)
    return UsageBucket.objects.filter(query)


def totals(rows: QuerySet[UsageBucket]) -> dict[str, Any]:
    return _shape(rows.aggregate(**_sums()))


def by_day(rows: QuerySet[UsageBucket]) -> list[dict[str, Any]]:
    """One row per UTC day that has usage, oldest first."""
    grouped = rows.annotate(day=TruncDate("hour", tzinfo=UTC)).values("day").annotate(**_sums()).order_by("day")
    return [_shape(row) | {"day": row["day"].isoformat()} for row in grouped[: MAX_ROWS * 4]]


def breakdown(rows: QuerySet[UsageBucket], by: str, *, limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """Rows grouped by user, key or model, the most tokens first."""
    fields = GROUPS[by]
    grouped = rows.values(*fields).annotate(**_sums()).order_by("-prompt_tokens", "-completion_tokens", *fields)
    out = []
    for row in grouped[:limit]:
        shaped = _shape(row)
        if by == "user":
            shaped = {"user": row["user_id"], "username": row["user__username"] or ""} | _without(shaped, fields)
        elif by == "key":
            shaped = {"key": row["api_key_id"], "name": row["api_key__name"] or ""} | _without(shaped, fields)
        out.append(shaped)
    return out


def _without(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in fields}


def top(by: str, *, since: datetime, until: datetime | None = None, order: str = "tokens", limit: int = 10):
    """The heaviest users, keys or models of a span, by tokens or by spend (the dashboard's tables)."""
    rows = buckets(since=since, until=until or timezone.now() + timedelta(hours=1))
    ranked = breakdown(rows, by, limit=MAX_ROWS)
    key = (lambda r: (r["cost"], r["total_tokens"])) if order == "spend" else (lambda r: (r["total_tokens"], r["cost"]))
    return sorted(ranked, key=key, reverse=True)[:limit]


def summary(
    *, since: datetime | None = None, until: datetime | None = None, user: Any = None, api_key: Any = None
) -> dict[str, Any]:
    """totals, by_day, by_model and by_key of [since, until) (default: the last 30 days)."""
    until = until or timezone.now() + timedelta(hours=1)
    since = since or until - DEFAULT_SPAN
    rows = buckets(since=since, until=until, user=user, api_key=api_key)
    return {
        "since": since,
        "until": until,
        "totals": totals(rows),
        "by_day": by_day(rows),
        "by_model": breakdown(rows, "model"),
        "by_key": breakdown(rows, "key"),
    }
