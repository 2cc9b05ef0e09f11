"""Serializer pieces every API shares: strict input and limit/offset pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from rest_framework import serializers

PAGE_DEFAULT = 50
PAGE_MAX = 200
# SQLite and PostgreSQL take a 64-bit OFFSET; a larger one was a 500 ("datatype mismatch"). No
# list here comes near a billion rows, so anything past that is a client's mistake: a 400.
OFFSET_MAX = 10**9


def setting(name: str) -> Callable[[], Any]:
    """A bound that is a setting, as a validator's `limit_value`: read when a request is checked and when
    the schema is made, so the schema shows this server's limit (drf-spectacular calls it too)."""
    return lambda: getattr(settings, name)


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare instead of ignoring them (a typo is a 400, not a silent default)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            for name in data:
                if name not in self.fields:
                    raise serializers.ValidationError({name: f"unknown field {name!r}"})
        return super().to_internal_value(data)


class PageQuerySerializer(serializers.Serializer):
    """`?limit=&offset=` of a list endpoint; subclass it to add filters."""

    limit = serializers.IntegerField(required=False, default=PAGE_DEFAULT, min_value=1, max_value=PAGE_MAX)
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=OFFSET_MAX)


def page(queryset: QuerySet, *, limit: int, offset: int) -> dict[str, Any]:
    """{count, limit, offset, results} for one slice of `queryset` (an ordered queryset)."""
    return {
        "count": queryset.count(),
        "limit": limit,
        "offset": offset,
        "results": list(queryset[offset : offset + limit]),
    }


def page_serializer(item: type[serializers.Serializer], *, ref_name: str) -> type[serializers.Serializer]:
    """The output serializer of `page()`: {count, limit, offset, results: [item...]}, named for the schema."""
    meta = type("Meta", (), {"ref_name": ref_name})
    fields = {
        "Meta": meta,
        "count": serializers.IntegerField(),
        "limit": serializers.IntegerField(),
        "offset": serializers.IntegerField(),
        "results": item(many=True),  # made last: DRF orders fields by creation
    }
    return type(ref_name, (serializers.Serializer,), fields)
