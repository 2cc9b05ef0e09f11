"""Writes of the dashboard: the process-wide recorder, batched metric rows, and their pruning.

The recorder is built lazily from settings (like Channels' layer registry) and replaced in
tests with `set_recorder()`. In server processes (daphne, uvicorn, runserver) it flushes from
a background thread every METRICS_FLUSH_SECONDS; rows older than METRICS_RETENTION_DAYS are pruned
by a job (`dashboard.tasks.prune_request_metrics`, enqueued every METRICS_PRUNE_SECONDS by the job
workers, once across all of them); elsewhere nothing is written unless `flush()` is
called, so management commands and test runs never write request metrics behind anyone's back.
"""

from __future__ import annotations

import atexit
import logging
import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import close_old_connections
from django.dispatch import receiver
from django.utils import timezone

from dashboard.models import RequestMetric
from dashboard.recorder import Recorder, Sample

logger = logging.getLogger(__name__)

_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def request_metrics_write(samples: list[Sample]) -> None:
    """Insert the samples: one bulk INSERT per database batch (a few hundred rows each on SQLite)."""
    RequestMetric.objects.bulk_create(
        [
            RequestMetric(
                created=s.created,
                endpoint=s.endpoint[:200],
                method=s.method,
                status=s.status,
                latency_ms=s.latency_ms,
                streamed=s.streamed,
                user_id=s.user_id,
            )
            for s in samples
        ]
    )


def _write_from_flusher(samples: list[Sample]) -> None:
    # The flusher is a long-lived thread outside any request: drop a connection the database
    # closed (or that outlived CONN_MAX_AGE) before and after, as request handling does.
    close_old_connections()
    try:
        request_metrics_write(samples)
    finally:
        close_old_connections()


def request_metrics_prune(*, older_than_days: int | None = None) -> int:
    """Delete request metrics older than the retention (METRICS_RETENTION_DAYS); returns how many went."""
    days = settings.METRICS_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    # No relation points at RequestMetric, so this is one DELETE statement, not a fetch-then-delete.
    deleted, _ = RequestMetric.objects.filter(created__lt=cutoff).delete()
    return deleted


def build_recorder(*, background: bool | None = None) -> Recorder:
    """A recorder configured from settings; `background` defaults to "in server processes only"."""
    if background is None:
        from llmsite.processes import is_server_process

        background = is_server_process()
    return Recorder(
        _write_from_flusher if background else request_metrics_write,
        interval=settings.METRICS_FLUSH_SECONDS,
        batch_size=settings.METRICS_FLUSH_BATCH,
        max_buffer=settings.METRICS_BUFFER_MAX,
        background=background,
    )


def get_recorder() -> Recorder:
    """The process-wide recorder (built on first use; it starts its thread on the first sample)."""
    global _recorder
    recorder = _recorder
    if recorder is None:
        with _recorder_lock:
            if _recorder is None:
                _recorder = build_recorder()
                if _recorder.background:
                    # The server flushes as it shuts down (request_metrics_flush, after its requests ended);
                    # this writes what was recorded after that, and serves servers that exit without it.
                    atexit.register(_recorder.stop)
            recorder = _recorder
    return recorder


def request_metrics_flush() -> int:
    """Stop the flusher thread and write every buffered sample now; how many were written.

    The server calls it as it shuts down, once its requests have ended (llmsite/serve.py): samples
    recorded after it are still written at exit.
    """
    recorder = _recorder
    if recorder is None:
        return 0
    before = recorder.written
    recorder.stop(flush=True)
    return recorder.written - before


def set_recorder(recorder: Recorder | None) -> Recorder | None:
    """Use `recorder` from now on (tests); None builds a fresh one from settings on next use. Returns the old one."""
    global _recorder
    with _recorder_lock:
        old, _recorder = _recorder, recorder
    return old


def recorder_stats() -> dict[str, Any]:
    recorder = _recorder
    if recorder is None:
        return {"buffered": 0, "written": 0, "dropped": 0}
    return {"buffered": len(recorder), "written": recorder.written, "dropped": recorder.dropped}


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("METRICS_") and setting != "METRICS_TOKEN":
        old = set_recorder(None)
        if old is not None and old.background:
            old.stop(flush=False)
