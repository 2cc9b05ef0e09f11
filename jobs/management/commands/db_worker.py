"""`manage.py db_worker`: django_tasks_db's worker, with what a worker killed mid-job needs.

Everything of the original works (`--queue-name`, `--batch`, `--max-tasks`, `--interval`, ...). Added:

- the worker's id is its `host:pid` (so a job's row says which process holds it);
- as it starts, and then every TASKS_HEARTBEAT_SECONDS from a thread of its own, it writes its heartbeat,
  marks failed the jobs of dead workers (`jobs.services.results_reap`), sends `jobs.signals.worker_tick`
  (training ends the runs of dead workers there) and enqueues the periodic jobs that are due;
- `--exit-with-parent`: stop when the process that started it goes away (its stdin closes), as the
  embedded workers of `python -m llmsite.serve` do;
- no autoreload (`--reload` is ignored): a reloaded worker would leave its running job behind.

SIGTERM or Ctrl-C: finish the job in progress, then exit; a second one ends that job now (recorded failed).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django_tasks_db.management.commands import db_worker

from jobs import services
from jobs.signals import worker_tick

logger = logging.getLogger("jobs.worker")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
IDLE_EXIT_SECONDS = 5.0  # after its parent went away: how long an idle worker has to exit before the job is ended


class Command(db_worker.Command):
    help = "Run a background job worker (heartbeats, reaping of dead workers' jobs, periodic jobs)."

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--exit-with-parent",
            action="store_true",
            help="Stop (ending the job in progress) when stdin closes: the parent process went away.",
        )
        parser.set_defaults(worker_id=services.worker_id(), reload=False)

    def handle(self, *args: Any, exit_with_parent: bool = False, **options: Any) -> None:
        options["reload"] = False
        worker = options["worker_id"]
        handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        # Until the worker loop installs its own handlers (inside super().handle), a stop signal would
        # kill the process outright and leave its heartbeat row behind: no job runs yet, so exit cleanly.
        for signum in STOP_SIGNALS:
            signal.signal(signum, _exit_before_the_loop)
        stopped = threading.Event()
        beat = threading.Thread(target=_beat_loop, args=(worker, stopped), name="jobs-heartbeat", daemon=True)
        try:
            services.worker_register(worker=worker, queues=options["queue_name"])
            _tick(worker, startup=True)
            beat.start()
            if exit_with_parent:
                threading.Thread(target=_exit_with_parent, name="jobs-parent-watch", daemon=True).start()
            super().handle(*args, **options)
        finally:
            for signum, handler in handlers.items():  # an in-process worker (tests) gives the signals back
                signal.signal(signum, handler)
            stopped.set()
            if beat.is_alive():
                beat.join(timeout=5)
            close_old_connections()
            services.worker_unregister(worker=worker)


def _exit_before_the_loop(signum: int, frame: Any) -> None:
    logger.warning("%s before the worker started taking jobs: exiting", signal.strsignal(signum))
    raise SystemExit(0)


def _tick(worker: str, *, startup: bool = False) -> None:
    """One beat: heartbeat, end the jobs of dead workers, let apps do the same, enqueue due periodic jobs."""
    close_old_connections()
    for step in (
        lambda: services.worker_beat(worker=worker),
        lambda: services.results_reap(startup=startup),
        lambda: worker_tick.send(sender=Command, startup=startup),
        services.periodic_enqueue_due,
    ):
        try:
            step()
        except Exception:  # a busy database must not end the heartbeat: the next beat tries again
            logger.exception("job worker %s: a heartbeat step failed", worker)


def _beat_loop(worker: str, stopped: threading.Event) -> None:
    try:
        while not stopped.wait(settings.TASKS_HEARTBEAT_SECONDS):
            _tick(worker)
    finally:
        connection.close()


def _exit_with_parent() -> None:
    # Raw reads: a daemon thread blocked in sys.stdin's buffered reader would hold its lock at exit (a fatal error).
    while os.read(sys.stdin.fileno(), 4096):  # b"" at EOF: the parent closed the pipe or died
        pass
    logger.warning("the process that started this worker went away: stopping")
    os.kill(os.getpid(), signal.SIGTERM)  # the worker stops taking jobs (an idle one exits now)...
    time.sleep(IDLE_EXIT_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)  # ...and ends the one in progress (recorded failed)
