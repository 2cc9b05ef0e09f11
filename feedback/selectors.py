"""Reads: which feedback a user may see, filtered by rating, provider, model and date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounts.permissions import owned_by
from feedback.models import Feedback


def parse_when(value: str) -> dt.date | dt.datetime | None:
    """`2025-06-01` as a date (meaning the whole day), an ISO 8601 date-time as a datetime, else None."""
    try:
        # Date first: parse_datetime would read a bare date as its midnight.
        return parse_date(value) or parse_datetime(value)
    except ValueError:  # well-formed but impossible, like 2025-02-30
        return None


def _start(value: dt.date | dt.datetime) -> dt.datetime:
    """A date means its first instant (in the site's time zone)."""
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    return timezone.make_aware(dt.datetime.combine(value, dt.time.min))


def _end(value: dt.date | dt.datetime) -> dt.datetime:
    """The first instant after `value`: a date includes its whole day."""
    if isinstance(value, dt.datetime):
        return _start(value) + dt.timedelta(microseconds=1)
    return _start(value + dt.timedelta(days=1))


def feedback_filter(
    queryset: QuerySet[Feedback],
    *,
    rating: int | None = None,
    provider: str | None = None,
    model: str | None = None,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
) -> QuerySet[Feedback]:
    """`queryset` narrowed by each filter given; `since` and `until` are inclusive."""
    if rating is not None:
        queryset = queryset.filter(rating=rating)
    if provider:
        queryset = queryset.filter(provider=provider)
    if model:
        queryset = queryset.filter(model=model)
    if since is not None:
        queryset = queryset.filter(created__gte=_start(since))
    if until is not None:
        queryset = queryset.filter(created__lt=_end(until))
    return queryset


def feedback_list(*, user: Any, **filters: Any) -> QuerySet[Feedback]:
    """The user's own feedback (staff: everyone's), newest first, narrowed by `feedback_filter`'s filters."""
    visible = owned_by(Feedback.objects.select_related("user", "message__conversation"), user, allow_staff=True)
    return feedback_filter(visible, **filters).order_by("-created", "-id")
