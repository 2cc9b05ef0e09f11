"""Battles in the admin: filter by vote and model; the exchange is read-only (votes come from their users)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from arena.models import Battle


class ModelFilter(admin.SimpleListFilter):
    """Battles in which a model took part, on either side."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        names = set(Battle.objects.values_list("model_a", flat=True).distinct())
        names |= set(Battle.objects.values_list("model_b", flat=True).distinct())
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: Any, queryset: Any) -> Any:
        from django.db.models import Q

        value = self.value()
        return queryset.filter(Q(model_a=value) | Q(model_b=value)) if value else queryset


@admin.register(Battle)
class BattleAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created",
        "user",
        "model_a",
        "model_b",
        "vote",
        "blind",
        "finish_reason_a",
        "finish_reason_b",
    )
    list_filter = ("vote", ModelFilter, "blind", "created")
    search_fields = ("prompt", "model_a", "model_b", "user__username")
    date_hierarchy = "created"
    list_select_related = ("user",)
    readonly_fields = [field.name for field in Battle._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False  # battles come from the arena, never typed in

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
