"""Reads: runs, their metrics, the latest run, the dataset catalogue."""

from __future__ import annotations

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery
from django_tasks_db.models import DBTaskResult

from training import datasets as ds
from training.models import EpochMetric, TrainingRun


def with_task_status(runs: QuerySet[TrainingRun]) -> QuerySet[TrainingRun]:
    """`runs` annotated with `task_status`, the state of each run's job (READY, RUNNING, ...; None without one)."""
    job_status = DBTaskResult.objects.filter(pk=OuterRef("task_id")).values("status")[:1]
    return runs.annotate(task_status=Subquery(job_status))


def _runs() -> QuerySet[TrainingRun]:
    return with_task_status(TrainingRun.objects.select_related("created_by"))


def run_task_status(*, run: TrainingRun) -> str | None:
    """The state of the run's job (READY, RUNNING, SUCCESSFUL, FAILED), None when it has none."""
    if hasattr(run, "task_status"):
        return run.task_status
    if run.task_id is None:
        return None
    return DBTaskResult.objects.filter(pk=run.task_id).values_list("status", flat=True).first()


def run_list(*, status: str | None = None) -> QuerySet[TrainingRun]:
    """Runs, newest first, optionally of one status."""
    runs = _runs()
    if status:
        runs = runs.filter(status=status)
    return runs


def run_get(*, run_id: int) -> TrainingRun | None:
    return _runs().filter(pk=run_id).first()


def run_latest(*, status: str | None = None) -> TrainingRun | None:
    """The most recently created run (of `status`, when given)."""
    return run_list(status=status).first()


def run_metrics(*, run: TrainingRun) -> QuerySet[EpochMetric]:
    """The run's per-epoch metrics, in epoch order."""
    return EpochMetric.objects.filter(run=run).select_related("run").order_by("epoch")


def dataset_list() -> list[ds.DatasetInfo]:
    """Every dataset a run may name, with its availability (the feedback export may be missing)."""
    return list(ds.catalogue(settings.TRAINING_DATASETS_DIR).values())
