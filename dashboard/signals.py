"""Prometheus counters fed by the other apps' records (they never import the dashboard)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from dashboard import prometheus


@receiver(post_save, sender="inference.InferenceRecord", dispatch_uid="dashboard-count-inference")
def count_inference(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """Tokens generated, requests and time to first token, counted as each usage record is written."""
    if created and not raw:
        prometheus.observe_inference(instance)
