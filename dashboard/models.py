"""One row per HTTP request, written in batches by the metrics middleware's flusher."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RequestMetric(models.Model):
    """A finished (or, for a stream, started) request: which route, how it ended, how long it took.

    `endpoint` is the URL pattern's route (`api/v1/conversations/<int:conversation_id>`), never
    the raw path, so ids cannot explode the number of distinct endpoints. Rows are written by
    `dashboard.services.request_metrics_write` and pruned after METRICS_RETENTION_DAYS.
    """

    created = models.DateTimeField(db_index=True, help_text="when the request arrived")
    endpoint = models.CharField(max_length=200)
    method = models.CharField(max_length=8)
    status = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField(help_text="until the response started (for streams: the headers, not the end)")
    streamed = models.BooleanField(default=False)
    # No database constraint: a batch written after its user was deleted must not fail as a whole.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["endpoint", "created"])]

    def __str__(self) -> str:
        return f"{self.method} {self.endpoint} {self.status} {self.latency_ms:.1f} ms"
