"""Dashboard jobs: pruning old request metrics (periodic: TASKS_PERIODIC enqueues it every METRICS_PRUNE_SECONDS)."""

from __future__ import annotations

from django_tasks import task

from dashboard.services import request_metrics_prune


@task()
def prune_request_metrics() -> int:
    """Delete request metrics older than METRICS_RETENTION_DAYS; returns how many went."""
    return request_metrics_prune()
