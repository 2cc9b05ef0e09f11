"""A CSV export action for admin changelists: the selected rows, streamed, safe to open in a spreadsheet.

@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    actions = [csv_export_action([("id", "pk"), ("user", "user.username"), ("rating", "rating")], name="feedback")]
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

Column = tuple[str, str | Callable[[Any], Any]]

# A cell starting with one of these is a formula to Excel/LibreOffice (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write returns the line, for csv.writer inside a streaming response."""

    def write(self, value: str) -> str:
        return value


def _value(obj: Any, getter: str | Callable[[Any], Any]) -> Any:
    if callable(getter):
        return getter(obj)
    value = obj
    for part in getter.split("."):
        value = getattr(value, part, None) if value is not None else None
    return value


def safe_cell(value: Any) -> Any:
    """The value as a CSV cell: None as empty, text that a spreadsheet would run as a formula quoted with '."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_rows(queryset: QuerySet, columns: Sequence[Column]) -> Iterator[str]:
    """The header line, then one CSV line per object (read in chunks, never all at once)."""
    writer = csv.writer(_Echo())
    yield writer.writerow([header for header, _ in columns])
    for obj in queryset.iterator(chunk_size=1000):
        yield writer.writerow([safe_cell(_value(obj, getter)) for _, getter in columns])


def csv_export_action(columns: Sequence[Column], *, name: str) -> Callable[..., StreamingHttpResponse]:
    """An admin action downloading the selected rows as `<name>-<timestamp>.csv`; needs view permission."""

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(modeladmin: admin.ModelAdmin, request: Any, queryset: QuerySet) -> StreamingHttpResponse:
        response = StreamingHttpResponse(csv_rows(queryset, columns), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
        return response

    return export_csv
