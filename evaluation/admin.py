"""Evaluations (with their per-example results inline) and the promotion log in the admin, read-only.

Evaluations start with `manage.py evaluate` or `POST /api/v1/evaluations`; promotions happen through
`manage.py promote` or the API. Both are records of what happened, so nothing here is editable.
"""

from django.contrib import admin

from evaluation.models import Evaluation, EvaluationExample, Promotion


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class EvaluationExampleInline(admin.TabularInline):
    model = EvaluationExample
    fields = ["kind", "index", "model", "prompt", "expected", "answer", "correct", "loss", "verdicts", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdmin):
    list_display = ["id", "model", "baseline", "judge", "status", "progress", "source", "created_by", "created_at"]
    list_filter = ["status", "source"]
    search_fields = ["model", "baseline"]
    inlines = [EvaluationExampleInline]

    @admin.display(description="progress")
    def progress(self, obj: Evaluation) -> str:
        return f"{obj.done}/{obj.total}" if obj.total else "-"


@admin.register(EvaluationExample)
class EvaluationExampleAdmin(ReadOnlyAdmin):
    list_display = ["id", "evaluation", "kind", "index", "model", "correct", "loss"]
    list_filter = ["kind"]


@admin.register(Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "model", "previous_model", "evaluation", "user", "reason", "created_at"]
    list_filter = ["kind"]

    def has_delete_permission(self, request, obj=None):
        return False  # the audit log keeps every change of the default
