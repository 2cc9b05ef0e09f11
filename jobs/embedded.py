"""The embedded job workers: `manage.py db_worker` children of the server (TASKS_WORKER=embedded).

`python -m llmsite.serve` starts one per queue (TASKS_QUEUES), so one machine runs its jobs with
nothing else to start, and stops them as it shuts down: `request_stop()` at the start of the drain
(each finishes the job in progress and takes no new one), `stop()` at its end (a job still running
ends now, recorded failed; a worker that does not exit is killed, and the next worker to start
records its job as failed). A worker whose server dies exits too (`--exit-with-parent`: its stdin
closes). With TASKS_WORKER=external nothing starts here: run `manage.py db_worker` yourself.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

IDLE_EXIT_SECONDS = 3.0  # how long an idle worker may take to exit on its first SIGTERM
MANAGE = Path(__file__).resolve().parents[1] / "manage.py"


class EmbeddedWorkers:
    """The worker processes this server started (one per queue); thread-safe enough for start, then stop."""

    def __init__(self, queues: list[str]):
        self.queues = list(queues)
        self.processes: list[subprocess.Popen] = []
        self.stop_requested = False

    def start(self) -> None:
        for queue in self.queues:
            command = [sys.executable, str(MANAGE), "db_worker", "--queue-name", queue, "--exit-with-parent"]
            # stdin is a pipe only this process holds: when it exits, however it exits, the worker sees EOF.
            # A session of its own: Ctrl-C in a terminal reaches the server, which stops its workers in order.
            process = subprocess.Popen(command, stdin=subprocess.PIPE, start_new_session=True)  # noqa: S603 - built here
            self.processes.append(process)
        logger.info("started %d job workers (%s)", len(self.processes), ", ".join(self.queues))

    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.processes if p.poll() is None]

    def request_stop(self) -> None:
        """Ask each worker to finish its job in progress and exit (its first SIGTERM)."""
        self.stop_requested = True
        for process in self.alive():
            process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers now: a job still running is ended (second SIGTERM) and recorded; kill what lingers."""
        # Exactly two SIGTERMs in all: the worker's second one ends the job (and restores the default
        # action, so a third would kill it before it records the job's end). An idle worker exits on the first.
        if not self.stop_requested:
            self.request_stop()
            idle_exit = time.monotonic() + IDLE_EXIT_SECONDS
            while self.alive() and time.monotonic() < idle_exit:
                time.sleep(0.05)
        for process in self.alive():
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("job worker %s did not stop within %g s: killing it", process.pid, timeout)
                process.kill()
                process.wait()
            if process.stdin is not None:
                process.stdin.close()


def start_if_embedded() -> EmbeddedWorkers | None:
    """Start the embedded workers when TASKS_WORKER=embedded; None otherwise."""
    from django.conf import settings

    if settings.TASKS_WORKER != "embedded":
        return None
    workers = EmbeddedWorkers(settings.TASKS_QUEUES)
    workers.start()
    return workers
