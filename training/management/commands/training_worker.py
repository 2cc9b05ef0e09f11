"""Train queued runs, one at a time, in this process (TRAINING_EXECUTOR=worker)."""

from __future__ import annotations

import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from training import services


class Command(BaseCommand):
    help = (
        "Train the queued runs one after another, then wait for more. Start it beside the servers when "
        "TRAINING_EXECUTOR=worker; runs it was training when it died are recorded as ended when it starts again "
        "(failed, or succeeded when the checkpoint was complete)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Train what is queued now, then exit.")
        parser.add_argument("--poll", type=float, default=2.0, help="Seconds between looks at the queue (default 2).")
        parser.add_argument(
            "--threads",
            type=int,
            default=settings.TRAINING_THREADS or None,
            help="torch threads (default: TRAINING_THREADS, else torch's choice).",
        )

    def handle(self, *args, once=False, poll=2.0, threads=None, **options):
        # SIGTERM (docker stop, systemd) ends like Ctrl-C: the run in progress is recorded, not left running.
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            self._loop(once=once, poll=poll, threads=threads)
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _loop(self, *, once: bool, poll: float, threads: int | None) -> None:
        reaped = services.runs_reap(startup=True)
        if reaped:
            self.stderr.write(f"recorded the end of {reaped} run(s) whose worker died")
        self.stdout.write(f"training worker {services.worker_id()} waiting for runs")
        try:
            while True:
                run = services.run_claim()
                if run is None:
                    if once:
                        return
                    close_old_connections()
                    time.sleep(poll)
                    services.runs_reap()
                    continue
                self.stdout.write(f"run #{run.pk} {run.name}: training")
                run = services.run_execute(run, threads=threads)
                self.stdout.write(f"run #{run.pk} {run.name}: {run.status}" + (f" ({run.error})" if run.error else ""))
        except KeyboardInterrupt:
            self.stdout.write("stopped")
