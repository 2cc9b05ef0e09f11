"""Running jobs in tests: drain the queue in this thread, or keep a worker running in a thread.

Both run the real worker loop of django_tasks_db (claim with SELECT ... FOR UPDATE SKIP LOCKED on
PostgreSQL, an exclusive transaction on SQLite, outcome recorded on the job's row).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management import call_command
from django.db import connection
from django_tasks_db.management.commands.db_worker import Worker


def run_jobs(queue: str = "*") -> str:
    """Run every job ready now in this thread (`manage.py db_worker --batch`), then return its output.

    Only in transaction=True tests: the worker closes its database connection between jobs.
    """
    out = io.StringIO()
    call_command(
        "db_worker", "--batch", "--queue-name", queue, "--no-startup-delay", "--interval", "0", stdout=out, stderr=out
    )
    return out.getvalue()


@contextmanager
def worker_thread(queue: str = "*", interval: float = 0.05) -> Iterator[Worker]:
    """A worker taking jobs in a thread of this process while the block runs (for transaction=True tests).

    On leaving, it finishes the job in progress (up to 120 s) and stops.
    """
    worker = Worker(
        queue_names=queue.split(","),
        interval=interval,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test:worker-thread",
        excluded_queue_names=[],
    )

    def run() -> None:
        try:
            worker.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="jobs-test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.running = False
        thread.join(timeout=120)
        assert not thread.is_alive(), "the job worker thread did not stop"
