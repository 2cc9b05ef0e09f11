"""Evaluation jobs (queue `training`: one heavy job at a time on a small machine). They call the services."""

from __future__ import annotations

from django_tasks import task

from evaluation import services


@task(queue_name="training")
def evaluate(evaluation_id: int) -> str:
    """Run the queued evaluation; returns its final status ("skipped" when it was no longer queued)."""
    evaluation = services.evaluation_claim(evaluation_id=evaluation_id)
    if evaluation is None:  # cancelled while it waited, or ended by a reaper
        return "skipped"
    return services.evaluation_execute(evaluation).status
