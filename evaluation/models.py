"""Evaluations of a model against a baseline, their per-example results, and the promotion audit log.

An Evaluation reaches a worker as a background job on queue `training` (`task_id`); the job claims
the `queued` row by moving it to `running` and writes `heartbeat_at` while it works. Write through
`evaluation.services`; the admin shows everything read-only.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Evaluation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    model = models.CharField(max_length=500, help_text="the pool id of the model evaluated")
    baseline = models.CharField(max_length=500, blank=True, help_text="the pool id it is compared with; blank: none")
    judge = models.CharField(max_length=500, blank=True, help_text="the pool id of the pairwise judge; blank: none")
    options = models.JSONField(default=dict, blank=True, help_text="limit, max_tokens, and the held-out split used")
    metrics = models.JSONField(
        default=dict, blank=True, help_text='{"models": {id: {eval_loss, perplexity, accuracy, ...}}, "judge": {...}}'
    )
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations"
    )
    source = models.CharField(max_length=16, default="api", help_text="api, cli or training (after a run)")
    training_run = models.ForeignKey(
        "training.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="evaluations",
        help_text="the run whose model this is (its datasets and split give the held-out loss)",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the process running it")
    task_id = models.UUIDField(null=True, blank=True, help_text="its background job; none for manage.py evaluate")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        against = f" vs {self.baseline}" if self.baseline else ""
        return f"#{self.pk} {self.model}{against} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def models(self) -> list[str]:
        return [self.model, self.baseline] if self.baseline else [self.model]


class EvaluationExample(models.Model):
    """One result: a held-out example's loss, a question's answer, or the judge's verdicts on one question."""

    class Kind(models.TextChoices):
        LOSS = "loss"
        QA = "qa"
        JUDGE = "judge"

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="examples")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    index = models.PositiveIntegerField(help_text="the example's place in its kind, for a stable order")
    model = models.CharField(max_length=500, help_text="the model answering (for judge rows: the judge)")
    question_id = models.CharField(max_length=64, blank=True)
    prompt = models.TextField(blank=True, help_text="the question, or the held-out example's first user turn")
    expected = models.JSONField(default=list, blank=True, help_text="accepted answers")
    answer = models.TextField(blank=True)
    correct = models.BooleanField(null=True, blank=True)
    loss = models.FloatField(null=True, blank=True)
    verdicts = models.JSONField(
        default=dict, blank=True, help_text='judge rows: {"first", "swapped", "outcome", "replies"}'
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["evaluation", "kind", "index", "model"]
        indexes = [models.Index(fields=["evaluation", "kind", "index"])]

    def __str__(self) -> str:
        return f"evaluation {self.evaluation_id} {self.kind} {self.index} {self.model}"


class Promotion(models.Model):
    """One change of the site's default model through promotion: who, why, from what, on which evidence."""

    class Kind(models.TextChoices):
        PROMOTE = "promote"
        ROLLBACK = "rollback"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    model = models.CharField(max_length=500, help_text="the pool id made the default")
    provider = models.CharField(max_length=32)
    device = models.CharField(max_length=16, blank=True)
    previous_provider = models.CharField(max_length=32)
    previous_model = models.CharField(max_length=500)
    previous_device = models.CharField(max_length=16, blank=True)
    previous_parameters = models.JSONField(default=dict, blank=True, help_text="the previous default's parameters")
    evaluation = models.ForeignKey(
        Evaluation, null=True, blank=True, on_delete=models.SET_NULL, related_name="promotions"
    )
    reverts = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reverted_by",
        help_text="rollbacks: the promotion undone",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="promotions"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.previous_model} → {self.model}"
