"""What kind of process this is: servers load models at start, commands and tests do not."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SERVER_PROGRAMS = ("daphne", "uvicorn", "gunicorn", "hypercorn")


def is_server_process(argv: list[str] | None = None) -> bool:
    """Whether this process serves HTTP (daphne, uvicorn, gunicorn, runserver's serving child)."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return False
    if any(part in SERVER_PROGRAMS for part in Path(argv[0]).parts):
        return True
    if len(argv) > 1 and argv[1] == "runserver":
        # The autoreloader's parent only watches files; its child (RUN_MAIN=true) serves.
        return os.environ.get("RUN_MAIN") == "true" or "--noreload" in argv
    return False
