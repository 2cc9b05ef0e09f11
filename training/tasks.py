"""Training jobs (queue `training`): a run, and the OpenVINO export of its model. They call the services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_tasks import task

from training import services


@task(queue_name="training")
def train_run(run_id: int) -> str:
    """Train the queued run `run_id`; returns its final status ("skipped" when it was no longer queued)."""
    run = services.run_claim(run_id=run_id)
    if run is None:  # cancelled while it waited, or ended by a reaper
        return "skipped"
    return services.run_execute(run, threads=settings.TRAINING_THREADS or None).status


@task(queue_name="training")
def export_run_model(run_id: int) -> dict[str, Any]:
    """Export a succeeded run's model for OpenVINO (then serve it, if the run asked); returns what it noted."""
    return services.run_export(run_id=run_id)
