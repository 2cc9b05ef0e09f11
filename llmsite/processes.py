"""What kind of process this is (servers load models at start, commands and tests do not), and the start-up threads."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

SERVER_PROGRAMS = ("daphne", "uvicorn", "gunicorn", "hypercorn")
SERVE_MODULE = ("llmsite", "serve.py")  # `python -m llmsite.serve`: daphne with graceful shutdown

_logger = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """Whether a process of this id exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_server_process(argv: list[str] | None = None) -> bool:
    """Whether this process serves HTTP (llmsite.serve, daphne, uvicorn, gunicorn, runserver's serving child)."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return False
    program = Path(argv[0]).parts
    if any(part in SERVER_PROGRAMS for part in program) or program[-2:] == SERVE_MODULE:
        return True
    if len(argv) > 1 and argv[1] == "runserver":
        # The autoreloader's parent only watches files; its child (RUN_MAIN=true) serves.
        return os.environ.get("RUN_MAIN") == "true" or "--noreload" in argv
    return False


def run_logged(target: Callable[[], object], *, failure: str, logger: logging.Logger | None = None) -> None:
    """Call `target`; log an exception as `failure` instead of raising it; close this thread's DB connections after."""
    from django.db import close_old_connections

    try:
        target()
    except Exception:
        (logger or _logger).exception(failure)
    finally:
        close_old_connections()


def start_in_background(
    name: str, target: Callable[[], object], *, failure: str, logger: logging.Logger | None = None
) -> threading.Thread:
    """Run `target` on a daemon thread once the app registry is ready, as `run_logged` does (for AppConfig.ready())."""

    def run() -> None:
        from django.apps import apps

        apps.ready_event.wait()  # ready() runs before the app registry is complete
        run_logged(target, failure=failure, logger=logger)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
