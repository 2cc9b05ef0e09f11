"""What the job workers share beyond the framework's own rows (django_tasks_db's `DBTaskResult`).

- `JobWorker`: one row per live `manage.py db_worker` process, its heartbeat; a job held by a worker
  whose heartbeat went stale (or whose process on this host is gone) is marked failed.
- `Schedule`: when each periodic job is next due; the worker that moves it on is the one that enqueues.
"""

from __future__ import annotations

from django.db import models


class JobWorker(models.Model):
    worker_id = models.CharField(max_length=200, primary_key=True, help_text="host:pid of the worker process")
    queues = models.CharField(max_length=200, help_text="the queues it takes jobs from")
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["worker_id"]

    def __str__(self) -> str:
        return self.worker_id


class Schedule(models.Model):
    task_path = models.CharField(max_length=200, primary_key=True, help_text="the periodic task's dotted path")
    next_at = models.DateTimeField(help_text="the first worker to see this time pass enqueues the task")
    last_enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task_path"]

    def __str__(self) -> str:
        return self.task_path
