"""Admin: prices (editable), limits (editable), the ledger and the limit counters (read-only records)."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.db import transaction
from django.db.models import F, QuerySet
from django.http import HttpRequest

from llmsite.admin_csv import csv_export_action
from usage import services
from usage.models import ModelPrice, UsageBucket, UsageCounter, UsageLimit
from usage.windows import KIND_NAMES, from_micros


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ("model", "input_per_million", "output_per_million", "updated_at")
    search_fields = ("model",)
    readonly_fields = ("updated_at",)

    # Each server process caches the table for a few seconds; this one forgets it once the
    # change is committed, so the next request it serves is priced with the new row.
    def save_model(self, request: HttpRequest, obj: ModelPrice, form: object, change: bool) -> None:
        super().save_model(request, obj, form, change)
        transaction.on_commit(services.prices_changed)

    def delete_model(self, request: HttpRequest, obj: ModelPrice) -> None:
        super().delete_model(request, obj)
        transaction.on_commit(services.prices_changed)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ModelPrice]) -> None:
        super().delete_queryset(request, queryset)
        transaction.on_commit(services.prices_changed)


@admin.register(UsageLimit)
class UsageLimitAdmin(admin.ModelAdmin):
    """Every user's and key's own limits in one list; they are also edited on the user's and the key's page."""

    list_display = ("user", "api_key", *KIND_NAMES, "updated_at")
    list_select_related = ("user", "api_key", "api_key__user")
    search_fields = ("user__username", "api_key__user__username", "api_key__name")
    autocomplete_fields = ("user", "api_key")
    fields = ("user", "api_key", *KIND_NAMES, "updated_at")
    readonly_fields = ("updated_at",)


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Records the site writes itself: staff look, never edit."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


BUCKET_CSV_COLUMNS = [
    ("hour", "hour"),
    ("user", "user.username"),
    ("api_key", "api_key.display_prefix"),
    ("model", "model"),
    ("kind", "kind"),
    ("requests", "requests"),
    ("cached_requests", "cached_requests"),
    ("cancelled_requests", "cancelled_requests"),
    ("failed_requests", "failed_requests"),
    ("prompt_tokens", "prompt_tokens"),
    ("completion_tokens", "completion_tokens"),
    ("cost", lambda bucket: from_micros(bucket.cost_micros)),
]


@admin.register(UsageBucket)
class UsageBucketAdmin(_ReadOnlyAdmin):
    """The ledger, one row per hour, user, key, model and kind; `manage.py usage report` sums it."""

    list_display = ("hour", "user", "api_key", "model", "kind", "requests", "tokens", "cost")
    list_filter = ("kind", "model")
    date_hierarchy = "hour"
    search_fields = ("user__username", "model")
    list_select_related = ("user", "api_key")
    actions = [csv_export_action(BUCKET_CSV_COLUMNS, name="usage")]

    @admin.display(description="tokens", ordering=F("prompt_tokens") + F("completion_tokens"))
    def tokens(self, obj: UsageBucket) -> int:
        return obj.total_tokens

    @admin.display(description="cost", ordering="cost_micros")
    def cost(self, obj: UsageBucket) -> Decimal:
        return from_micros(obj.cost_micros)


@admin.register(UsageCounter)
class UsageCounterAdmin(_ReadOnlyAdmin):
    """What each limit's current window holds, reservations included: to see why a request got a 429."""

    list_display = ("subject", "kind", "window_start", "used")
    list_filter = ("kind",)
    search_fields = ("subject",)
    date_hierarchy = "window_start"
    ordering = ("-window_start", "subject", "kind")
