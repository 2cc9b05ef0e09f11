"""`manage.py db_worker` (jobs' own) and the embedded workers `python -m llmsite.serve` starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from django_tasks_db.models import DBTaskResult

from dashboard.tasks import prune_request_metrics
from jobs import services
from jobs.embedded import EmbeddedWorkers
from jobs.models import JobWorker
from jobs.testing import run_jobs
from llmsite.testing import ROOT, database_url


def wait_for(condition, timeout: float = 120.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout  # generous: a worker on a busy machine imports Django first
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)  # the worker closes its connection between jobs, as in production
def test_a_starting_worker_fails_the_jobs_of_dead_workers_then_runs_the_queue():
    dead = DBTaskResult.objects.get(pk=prune_request_metrics.enqueue().id)
    dead.claim(f"{socket.gethostname()}:999999999")
    ready = prune_request_metrics.enqueue()
    run_jobs()
    assert DBTaskResult.objects.get(pk=dead.pk).status == "FAILED"
    job = DBTaskResult.objects.get(pk=ready.id)
    assert job.status == "SUCCESSFUL" and job.worker_ids == [services.worker_id()]  # its id is host:pid
    assert not JobWorker.objects.exists()  # a worker that stops removes its heartbeat row


# A worker process that receives SIGTERM after writing its heartbeat, before its job loop starts
# (where a server that stops right after starting its workers signals them).
SIGNALLED_AS_IT_STARTS = """
import os, signal, sys
import django
django.setup()
from django.core.management import call_command
from jobs import services
def reap_then_receive_sigterm(**kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
services.results_reap = reap_then_receive_sigterm
call_command("db_worker", "--queue-name", "default", "--no-startup-delay")
sys.exit(3)  # not reached: the worker loop would have run until stopped
"""


@pytest.mark.django_db(transaction=True)  # the worker process reads and writes committed rows
def test_a_stop_signal_before_the_worker_loop_starts_exits_cleanly_and_removes_the_heartbeat():
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "llmsite.settings"}
    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED_AS_IT_STARTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "before the worker started taking jobs: exiting" in done.stderr
    assert not JobWorker.objects.exists()


@pytest.mark.django_db(transaction=True)  # the worker processes read and write committed rows
def test_embedded_workers_run_jobs_and_stop_when_asked_or_when_their_server_goes(monkeypatch, settings):
    settings.TASKS_PERIODIC = {}
    monkeypatch.setenv("DATABASE_URL", database_url())
    monkeypatch.setenv("METRICS_PRUNE_SECONDS", "0")  # this test enqueues its own jobs
    job = prune_request_metrics.enqueue()
    workers = EmbeddedWorkers(["default", "training"])
    workers.start()
    try:
        wait_for(lambda: DBTaskResult.objects.get(pk=job.id).status == "SUCCESSFUL", what="the job")
        # Each worker writes its heartbeat as it starts; the training one may start after the job ran.
        wait_for(
            lambda: set(JobWorker.objects.values_list("queues", flat=True)) == {"default", "training"},
            what="both workers' heartbeats",
        )
        # Asked to stop while idle, each exits at once, cleanly.
        workers.request_stop()
        wait_for(lambda: not workers.alive(), what="the workers' exit")
        assert [p.returncode for p in workers.processes] == [0, 0]
        assert not JobWorker.objects.exists()
    finally:
        workers.stop(timeout=30)

    # A worker whose server died (its stdin closes) stops too.
    orphan = EmbeddedWorkers(["default"])
    orphan.start()
    try:
        wait_for(lambda: JobWorker.objects.exists(), what="the worker's first heartbeat")
        orphan.processes[0].stdin.close()
        wait_for(lambda: not orphan.alive(), what="the orphan's exit")
    finally:
        orphan.stop(timeout=30)
