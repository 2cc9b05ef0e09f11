"""Fine-tuning runs and their per-epoch metrics.

A run is SFT (learn the answers of chat and text data) or DPO (prefer the chosen of two answers).
A TrainingRun reaches a worker as a background job (`task_id`: its django_tasks_db row, run by
`manage.py db_worker`); the job claims the `queued` run by moving it to `running` and writes
`heartbeat_at` while it trains. Write runs through
`training.services`; the admin shows them read-only, with the loss of every epoch.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.db import models
from django.db.models import Q


class TrainingRun(models.Model):
    class Method(models.TextChoices):
        SFT = "sft", "supervised fine-tuning"
        DPO = "dpo", "direct preference optimisation"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    # What to train
    name = models.CharField(max_length=64, help_text="the model name: the checkpoint lands in MODELS_DIR/<name>/")
    base_model = models.CharField(max_length=500, help_text="the model fine-tuned: a folder name under MODELS_DIR")
    datasets = models.JSONField(default=list, help_text='dataset names, e.g. ["dialogue", "knowledge"]')
    method = models.CharField(
        max_length=8,
        choices=Method.choices,
        default=Method.SFT,
        help_text="sft: learn the answers (chat, text); dpo: prefer chosen over rejected answers (preference pairs)",
    )
    # Hyper-parameters
    epochs = models.PositiveSmallIntegerField(default=1)
    max_steps = models.PositiveIntegerField(null=True, blank=True, help_text="stop after this many optimizer steps")
    batch_size = models.PositiveSmallIntegerField(default=4)
    grad_accum_steps = models.PositiveSmallIntegerField(default=1)
    learning_rate = models.FloatField(default=5e-5)
    warmup_ratio = models.FloatField(default=0.1)
    weight_decay = models.FloatField(default=0.0)
    max_length = models.PositiveIntegerField(default=512, help_text="tokens per sequence")
    eval_fraction = models.FloatField(default=0.1)
    seed = models.PositiveIntegerField(default=0)
    device = models.CharField(max_length=8, default="auto")
    beta = models.FloatField(null=True, blank=True, help_text="DPO only: how close the model stays to the base")
    lora = models.BooleanField(default=False, help_text="DPO only: train LoRA adapters, merged into the saved model")
    serve = models.BooleanField(default=False, help_text="make the result the served model when the run succeeds")
    # Who and how
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    source = models.CharField(max_length=16, default="api", help_text="api, cli or admin")
    # State
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the process running it")
    task_id = models.UUIDField(
        null=True, blank=True, help_text="its background job (a django_tasks_db task result); none for manage.py train"
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Progress and results
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(null=True, blank=True)
    train_examples = models.PositiveIntegerField(null=True, blank=True)
    eval_examples = models.PositiveIntegerField(null=True, blank=True)
    device_used = models.CharField(max_length=8, blank=True)
    eval_loss_before = models.FloatField(null=True, blank=True)
    eval_loss_after = models.FloatField(null=True, blank=True)
    output_dir = models.CharField(max_length=1000, blank=True)
    final_metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"])]
        constraints = [
            # Two runs in flight may never write the same model folder.
            models.UniqueConstraint(
                fields=["name"], condition=Q(status__in=["queued", "running"]), name="training_one_active_run_per_name"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name} ({self.status})"

    @property
    def perplexity_before(self) -> float | None:
        return None if self.method == self.Method.DPO else _perplexity(self.eval_loss_before)

    @property
    def perplexity_after(self) -> float | None:
        return None if self.method == self.Method.DPO else _perplexity(self.eval_loss_after)

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED


class EpochMetric(models.Model):
    """The figures of one finished epoch (a run stopped by max_steps mid-epoch records that partial epoch)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    epoch = models.PositiveSmallIntegerField()
    step = models.PositiveIntegerField(help_text="optimizer steps done when the epoch ended")
    train_loss = models.FloatField()
    eval_loss = models.FloatField(null=True, blank=True)
    learning_rate = models.FloatField()
    tokens_per_second = models.FloatField()
    seconds = models.FloatField(help_text="seconds since the run began training")
    extra = models.JSONField(
        default=dict,
        blank=True,
        help_text="DPO: preference_accuracy, logprob_margin, reward_accuracy, reward_margin on the held-out pairs",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "epoch"]
        constraints = [models.UniqueConstraint(fields=["run", "epoch"], name="training_one_metric_per_epoch")]

    def __str__(self) -> str:
        return f"run {self.run_id} epoch {self.epoch}"

    @property
    def eval_perplexity(self) -> float | None:
        """exp(eval loss) of an SFT run; None for DPO, whose eval loss is a preference loss."""
        return None if self.run.method == TrainingRun.Method.DPO else _perplexity(self.eval_loss)


def _perplexity(loss: float | None) -> float | None:
    return None if loss is None else math.exp(min(loss, 50.0))
