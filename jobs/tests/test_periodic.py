"""Periodic jobs: enqueued once per period however many workers look, and the metrics pruning they run."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from dashboard.models import RequestMetric
from jobs import services
from jobs.models import Schedule
from jobs.testing import run_jobs

PRUNE = "dashboard.tasks.prune_request_metrics"
WORKERS = 5


@pytest.mark.django_db(transaction=True)  # each "worker" thread commits through a connection of its own
def test_workers_looking_at_once_enqueue_a_periodic_job_once_per_period(settings):
    settings.TASKS_PERIODIC = {PRUNE: 3600}
    barrier = threading.Barrier(WORKERS)
    enqueued: list[list[str]] = []

    def tick() -> None:
        try:
            barrier.wait(timeout=60)
            enqueued.append(services.periodic_enqueue_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(enqueued) == [[]] * (WORKERS - 1) + [[PRUNE]]
    assert DBTaskResult.objects.filter(task_path=PRUNE).count() == 1

    assert services.periodic_enqueue_due() == []  # the period has not passed
    Schedule.objects.filter(pk=PRUNE).update(next_at=timezone.now() - dt.timedelta(seconds=1))
    assert services.periodic_enqueue_due() == [PRUNE]  # it has: once more
    assert DBTaskResult.objects.filter(task_path=PRUNE).count() == 2


@pytest.mark.django_db
def test_a_period_of_zero_turns_a_periodic_job_off(settings):
    settings.TASKS_PERIODIC = {PRUNE: 0}
    assert services.periodic_enqueue_due() == []
    assert not DBTaskResult.objects.exists()


@pytest.mark.django_db(transaction=True)  # the worker closes its connection between jobs, as in production
def test_the_pruning_job_deletes_metrics_older_than_the_retention(settings):
    settings.TASKS_PERIODIC = {PRUNE: 3600}
    settings.METRICS_RETENTION_DAYS = 7
    now = timezone.now()
    for days in (1, 6, 8, 30):
        RequestMetric.objects.create(
            created=now - dt.timedelta(days=days), endpoint="/x", method="GET", status=200, latency_ms=1.0
        )
    # A worker's first beat enqueues the job and its loop runs it.
    run_jobs()
    job = DBTaskResult.objects.get(task_path=PRUNE)
    assert job.status == "SUCCESSFUL" and job.return_value == 2
    assert sorted((now - m.created).days for m in RequestMetric.objects.all()) == [1, 6]
