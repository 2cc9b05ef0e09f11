"""A job whose worker died is marked failed, never left RUNNING; a live worker's job is left alone."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from dashboard.tasks import prune_request_metrics
from jobs import services
from jobs.models import JobWorker

pytestmark = pytest.mark.django_db

HOST = socket.gethostname()


def running_job(holder: str, *, started: dt.datetime | None = None) -> DBTaskResult:
    job = DBTaskResult.objects.get(pk=prune_request_metrics.enqueue().id)
    job.claim(holder)
    if started is not None:
        DBTaskResult.objects.filter(pk=job.pk).update(started_at=started)
    return job


def status_of(job: DBTaskResult) -> str:
    job.refresh_from_db()
    return job.status


def test_it_fails_the_job_of_a_worker_process_that_is_gone_from_this_host():
    job = running_job(f"{HOST}:999999999")
    assert services.results_reap() == 1
    job.refresh_from_db()
    assert job.status == "FAILED" and job.finished_at is not None
    assert job.exception_class_path == services.WORKER_LOST
    assert f"its worker process {HOST}:999999999 ended while the job was running" in job.traceback
    assert job.task_result.errors[0].traceback == job.traceback  # what the Tasks API shows callers


def test_it_fails_the_job_of_a_worker_elsewhere_only_once_its_heartbeat_is_stale(settings):
    settings.TASKS_STALE_SECONDS = 60
    job = running_job("elsewhere:42")
    JobWorker.objects.create(
        worker_id="elsewhere:42", queues="default", started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    assert services.results_reap() == 0 and status_of(job) == "RUNNING"
    JobWorker.objects.filter(pk="elsewhere:42").update(heartbeat_at=timezone.now() - dt.timedelta(seconds=61))
    assert services.results_reap() == 1 and status_of(job) == "FAILED"
    job.refresh_from_db()
    assert "its worker elsewhere:42 stopped sending heartbeats" in job.traceback


def test_a_job_just_claimed_by_a_worker_with_no_heartbeat_yet_gets_the_stale_period(settings):
    settings.TASKS_STALE_SECONDS = 60
    fresh = running_job("elsewhere:7")
    old = running_job("elsewhere:8", started=timezone.now() - dt.timedelta(seconds=61))
    assert services.results_reap() == 1
    assert status_of(fresh) == "RUNNING" and status_of(old) == "FAILED"


def test_this_worker_keeps_its_own_job_but_fails_its_previous_lifes_at_start_up():
    job = running_job(services.worker_id())
    services.worker_register(worker=services.worker_id(), queues="default")
    assert services.results_reap() == 0 and status_of(job) == "RUNNING"
    # Starting with the pid of a previous life (a restarted container): nothing it holds can be running.
    assert services.results_reap(startup=True) == 1 and status_of(job) == "FAILED"


def test_finished_and_waiting_jobs_are_never_touched():
    waiting = DBTaskResult.objects.get(pk=prune_request_metrics.enqueue().id)
    done = running_job(f"{HOST}:999999999")
    done.set_successful(0)
    assert services.results_reap() == 0
    assert status_of(waiting) == "READY" and status_of(done) == "SUCCESSFUL"
