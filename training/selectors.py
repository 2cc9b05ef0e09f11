"""Reads: runs, their metrics, the latest run, the dataset catalogue."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from training import datasets as ds
from training.models import EpochMetric, TrainingRun


def run_list(*, status: str | None = None) -> QuerySet[TrainingRun]:
    """Runs, newest first, optionally of one status."""
    runs = TrainingRun.objects.select_related("created_by")
    if status:
        runs = runs.filter(status=status)
    return runs


def run_get(*, run_id: int) -> TrainingRun | None:
    return TrainingRun.objects.select_related("created_by").filter(pk=run_id).first()


def run_latest(*, status: str | None = None) -> TrainingRun | None:
    """The most recently created run (of `status`, when given)."""
    return run_list(status=status).first()


def run_metrics(*, run: TrainingRun) -> QuerySet[EpochMetric]:
    """The run's per-epoch metrics, in epoch order."""
    return EpochMetric.objects.filter(run=run).order_by("epoch")


def dataset_list() -> list[ds.DatasetInfo]:
    """Every dataset a run may name, with its availability (the feedback export may be missing)."""
    return list(ds.catalogue(settings.TRAINING_DATASETS_DIR).values())
