"""Job worker use cases: heartbeats, ending the jobs of dead workers, enqueuing periodic jobs.

django_tasks_db claims a job by moving its `DBTaskResult` row to RUNNING with the worker's id, and
records the outcome when the task returns or raises. A worker killed mid-job (SIGKILL, the OOM
killer, a lost machine) records nothing: its row would stay RUNNING forever. So each worker
(`manage.py db_worker`, jobs' own) registers a `JobWorker` row, beats it every
TASKS_HEARTBEAT_SECONDS, and on each beat `results_reap()` marks FAILED the RUNNING jobs whose worker
is gone: its process on this host no longer exists, or its heartbeat is older than TASKS_STALE_SECONDS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from jobs.models import JobWorker, Schedule
from llmsite.processes import pid_alive

logger = logging.getLogger(__name__)

WORKER_LOST = "jobs.services.WorkerLost"  # the exception class path recorded on a job whose worker died
FORGET_WORKERS_AFTER = dt.timedelta(days=1)  # heartbeat rows of workers gone this long are deleted


def worker_id() -> str:
    """host:pid of this process: the id its jobs carry."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_register(*, worker: str, queues: str) -> None:
    now = timezone.now()
    JobWorker.objects.update_or_create(
        worker_id=worker, defaults={"queues": queues[:200], "started_at": now, "heartbeat_at": now}
    )


def worker_beat(*, worker: str) -> None:
    """Write the worker's heartbeat (re-registering it if its row was removed meanwhile)."""
    if not JobWorker.objects.filter(worker_id=worker).update(heartbeat_at=timezone.now()):
        worker_register(worker=worker, queues="?")


def worker_unregister(*, worker: str) -> None:
    JobWorker.objects.filter(worker_id=worker).delete()


def _why_gone(
    holder: str,
    *,
    claimed: dt.datetime | None,
    me: str,
    startup: bool,
    beats: dict[str, dt.datetime],
    stale: dt.datetime,
) -> str | None:
    """Why the worker `holder` can no longer be running the job it claimed at `claimed`, or None while it may be."""
    if holder == me:
        # At start-up this process holds nothing yet: a previous life with the same pid (a restarted container).
        return f"its worker {holder} was restarted while the job was running" if startup else None
    host, _, pid = holder.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
        return f"its worker process {holder} ended while the job was running"
    beat = beats.get(holder)
    if beat is None and claimed is not None and claimed > stale:
        return None  # claimed moments ago by a worker whose first beat is not in yet
    if beat is None or beat < stale:
        seen = timezone.localtime(beat).isoformat(timespec="seconds") if beat else "never"
        return f"its worker {holder or '?'} stopped sending heartbeats (last: {seen})"
    return None


def results_reap(*, startup: bool = False) -> int:
    """Mark FAILED the RUNNING jobs whose worker is gone (see the module docstring); returns how many."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.TASKS_STALE_SECONDS)
    beats = dict(JobWorker.objects.values_list("worker_id", "heartbeat_at"))
    me = worker_id()
    reaped = 0
    for result in DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).only("id", "worker_ids", "started_at"):
        holder = result.worker_ids[-1] if result.worker_ids else ""
        why = _why_gone(holder, claimed=result.started_at, me=me, startup=startup, beats=beats, stale=stale)
        if why is None:
            continue
        updated = DBTaskResult.objects.filter(pk=result.pk, status=TaskResultStatus.RUNNING).update(
            status=TaskResultStatus.FAILED,
            finished_at=now,
            exception_class_path=WORKER_LOST,
            traceback=f"WorkerLost: {why}",
            return_value=None,
        )
        if updated:
            logger.warning("job %s marked failed: %s", result.pk, why)
            reaped += updated
    JobWorker.objects.filter(heartbeat_at__lt=now - FORGET_WORKERS_AFTER).delete()
    return reaped


def periodic_enqueue_due() -> list[str]:
    """Enqueue each periodic job (TASKS_PERIODIC) whose time has come; returns the task paths enqueued.

    Every worker calls this on each beat; the schedule row is moved on by one conditional UPDATE, in
    the same transaction as the enqueue, so however many workers look at once a job is enqueued once
    per period (PostgreSQL re-checks the condition after the row lock; SQLite serialises writers).
    """
    enqueued = []
    for path, seconds in settings.TASKS_PERIODIC.items():
        if not seconds or seconds <= 0:
            continue
        now = timezone.now()
        with contextlib.suppress(IntegrityError):  # another worker created it at the same moment
            Schedule.objects.get_or_create(task_path=path, defaults={"next_at": now})
        with transaction.atomic():
            won = Schedule.objects.filter(task_path=path, next_at__lte=now).update(
                next_at=now + dt.timedelta(seconds=seconds), last_enqueued_at=now
            )
            if won:
                import_string(path).enqueue()
                enqueued.append(path)
    return enqueued
