"""Training runs in the admin: read-only records with the loss of every epoch; cancel and serve actions.

Runs are started with `manage.py train` or `POST /api/v1/training/runs`, not here: a run is a
record of what happened, so its fields are not editable.
"""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from llmsite.errors import ApplicationError
from training import selectors, services
from training.models import EpochMetric, TrainingRun


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class EpochMetricInline(admin.TabularInline):
    model = EpochMetric
    fields = [
        "epoch",
        "step",
        "train_loss",
        "eval_loss",
        "eval_perplexity",
        "learning_rate",
        "tokens_per_second",
        "seconds",
        "extra",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="eval perplexity")
    def eval_perplexity(self, obj: EpochMetric) -> str:
        value = obj.eval_perplexity
        return "-" if value is None else f"{value:.2f}"


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "status",
        "method",
        "base_model",
        "datasets_text",
        "progress",
        "job",
        "loss_per_epoch",
        "eval_loss_before_text",
        "eval_loss_after_text",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "method", "source", "base_model"]
    search_fields = ["name", "base_model", "error"]
    date_hierarchy = "created_at"
    list_select_related = ["created_by"]
    inlines = [EpochMetricInline]
    actions = ["cancel_runs", "serve_model"]
    readonly_fields = [
        *[f.name for f in TrainingRun._meta.fields],
        "loss_table",
        "perplexity_before",
        "perplexity_after",
        "job",
    ]
    fieldsets = [
        (None, {"fields": ["name", "status", "error", "method", "base_model", "datasets", "output_dir", "serve"]}),
        (
            "Results",
            {
                "fields": [
                    "loss_table",
                    "eval_loss_before",
                    "eval_loss_after",
                    "perplexity_before",
                    "perplexity_after",
                    "final_metrics",
                ]
            },
        ),
        (
            "Hyper-parameters",
            {
                "fields": [
                    "epochs",
                    "max_steps",
                    "batch_size",
                    "grad_accum_steps",
                    "learning_rate",
                    "warmup_ratio",
                    "weight_decay",
                    "max_length",
                    "eval_fraction",
                    "seed",
                    "device",
                    "beta",
                    "lora",
                ]
            },
        ),
        (
            "Execution",
            {
                "fields": [
                    "source",
                    "created_by",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "job",
                    "worker",
                    "heartbeat_at",
                    "cancel_requested",
                    "step",
                    "total_steps",
                    "train_examples",
                    "eval_examples",
                    "device_used",
                ]
            },
        ),
    ]

    def get_queryset(self, request):
        return selectors.with_task_status(super().get_queryset(request)).prefetch_related("metrics")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a record: the detail page is a read-only view

    @admin.display(description="datasets")
    @admin.display(description="job")
    def job(self, obj: TrainingRun) -> str:
        """The run's background job and its state, linked to the job's own page."""
        if obj.task_id is None:
            return "-"
        state = selectors.run_task_status(run=obj) or "gone"
        url = reverse("admin:django_tasks_database_dbtaskresult_change", args=[obj.task_id])
        return format_html('<a href="{}">{}</a>', url, state)

    def datasets_text(self, obj: TrainingRun) -> str:
        return ", ".join(obj.datasets)

    @admin.display(description="steps")
    def progress(self, obj: TrainingRun) -> str:
        return f"{obj.step}/{obj.total_steps}" if obj.total_steps else str(obj.step)

    @admin.display(description="train → eval loss per epoch")
    def loss_per_epoch(self, obj: TrainingRun) -> str:
        rows = sorted(obj.metrics.all(), key=lambda m: m.epoch)
        return " | ".join(f"{m.epoch}: {m.train_loss:.3f} → {_loss(m.eval_loss)}" for m in rows) or "-"

    @admin.display(description="eval loss before", ordering="eval_loss_before")
    def eval_loss_before_text(self, obj: TrainingRun) -> str:
        return _loss(obj.eval_loss_before)

    @admin.display(description="eval loss after", ordering="eval_loss_after")
    def eval_loss_after_text(self, obj: TrainingRun) -> str:
        return _loss(obj.eval_loss_after)

    @admin.display(description="loss per epoch")
    def loss_table(self, obj: TrainingRun) -> str:
        rows = sorted(obj.metrics.all(), key=lambda m: m.epoch)
        if not rows:
            return "-"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((m.epoch, m.step, _loss(m.train_loss), _loss(m.eval_loss), f"{m.tokens_per_second:.0f}") for m in rows),
        )
        return format_html(
            "<table><tr><th>epoch</th><th>step</th><th>train loss</th><th>eval loss</th><th>tokens/s</th></tr>{}"
            "</table>",
            body,
        )

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request, queryset):
        for run in queryset:
            try:
                services.run_cancel(run_id=run.pk)
            except ApplicationError as exc:
                self.message_user(request, f"#{run.pk}: {exc.message}", level=messages.WARNING)
            else:
                self.message_user(request, f"#{run.pk}: cancel requested", level=messages.SUCCESS)

    @admin.action(description="Serve the selected run's model")
    def serve_model(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one succeeded run to serve.", level=messages.ERROR)
            return
        run = queryset.get()
        try:
            services.run_model_serve(run_id=run.pk, load_here=True)
        except ApplicationError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
        else:
            self.message_user(request, f"Now serving hf:{run.name}.", level=messages.SUCCESS)


@admin.register(EpochMetric)
class EpochMetricAdmin(admin.ModelAdmin):
    list_display = ["run", "epoch", "step", "train_loss", "eval_loss", "learning_rate", "tokens_per_second", "seconds"]
    list_filter = ["run__status"]
    search_fields = ["run__name"]
    list_select_related = ["run"]
    readonly_fields = [f.name for f in EpochMetric._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # written by the trainer only
