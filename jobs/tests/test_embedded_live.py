"""`make run` (`python -m llmsite.serve`) runs the job workers itself and stops them with it.

A real server on a free port, without a model (jobs need none): its two `manage.py db_worker`
children take jobs from its database (the periodic metrics pruning their first beat enqueues),
and on SIGTERM the server stops them and exits 0; killed, its workers exit on their own.
"""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from llmsite.testing import start_live_server

pytestmark = pytest.mark.live_server

DEADLINE = 120  # generous: waits poll, and only a broken start or stop gets near it
ENV = {"LLM_LOAD_AT_START": "never", "EMBEDDINGS_LOAD_AT_START": "never", "TASKS_HEARTBEAT_SECONDS": "0.5"}


def rows(server, query: str) -> list[tuple]:
    return [tuple(row) for row in server.query(query)]


def job_workers(server) -> list[psutil.Process]:
    children = psutil.Process(server.process.pid).children()
    return [p for p in children if "db_worker" in p.cmdline()]


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {DEADLINE} s"
        time.sleep(0.2)


def test_the_server_runs_its_job_workers_and_stops_them_on_sigterm(tmp_path):
    server = start_live_server(tmp_path, **ENV)
    try:
        workers = job_workers(server)
        assert sorted(p.cmdline()[p.cmdline().index("--queue-name") + 1] for p in workers) == ["default", "training"]
        pruned = "SELECT status FROM django_tasks_database_dbtaskresult WHERE task_path LIKE '%prune_request_metrics'"
        wait_for(lambda: rows(server, pruned) == [("SUCCESSFUL",)], "the periodic pruning job")
        # each worker registers as it starts; the pruning may run before the other has started
        wait_for(lambda: len(rows(server, "SELECT worker_id FROM jobs_jobworker")) == 2, "both workers' registration")

        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=DEADLINE) == 0
        _gone, alive = psutil.wait_procs(workers, timeout=DEADLINE)
        assert not alive, f"job workers outlived their server: {alive}"
        assert rows(server, "SELECT worker_id FROM jobs_jobworker") == []  # they stopped cleanly
    finally:
        server.stop()


def test_job_workers_exit_when_their_server_is_killed(tmp_path):
    server = start_live_server(tmp_path, **ENV)
    try:
        wait_for(lambda: len(job_workers(server)) == 2, "the job workers' start")
        workers = job_workers(server)
        server.process.kill()
        server.process.wait(timeout=DEADLINE)
        _gone, alive = psutil.wait_procs(workers, timeout=DEADLINE)
        assert not alive, f"job workers outlived their killed server: {alive}"
    finally:
        server.stop()
