"""A real process that stops at a chosen file operation, so a test can SIGKILL it at the worst moment.

Run as a child process, it patches one file operation, then runs a manage.py command:

    python -m llmsite.tests.crashpoint --marker /tmp/m --at before-replace:index.json -- rebuild_index

A point names an operation and a pattern that the file's name (not its folder) must match (fnmatch):
- `before-replace:PATTERN`: just before os.replace moves a file or folder to that name;
- `after-replace:PATTERN`: just after it did;
- `open:PATTERN`: when a file of that name is opened for writing.
There the process writes the marker file and sleeps until it is killed. Production code has no
seam for this: the patch lives in the child only. `stop_at()` starts such a child and returns once
it has reached its point; `kill()` ends it as a crash would (SIGKILL: no handler, no cleanup).
"""

from __future__ import annotations

import argparse
import builtins
import fnmatch
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("before-replace", "after-replace", "open")


def _freeze(marker: Path, what: str) -> None:
    marker.write_text(what)
    while True:  # alive, holding whatever it holds (locks, temporary files), until SIGKILL
        time.sleep(3600)


def _matches(path: object, pattern: str) -> bool:
    if not isinstance(path, str | bytes | os.PathLike):
        return False  # a file descriptor
    name = os.path.basename(os.fsdecode(path))
    return fnmatch.fnmatchcase(name, pattern)


def install(point: str, marker: Path) -> None:
    """Patch the operation `point` names so that it freezes the process when its pattern matches."""
    kind, _, pattern = point.partition(":")
    if kind not in KINDS or not pattern:
        raise SystemExit(f"--at must be one of {', '.join(KINDS)} followed by ':PATTERN', not {point!r}")
    if kind == "open":
        real_open = builtins.open

        def open_(file, mode="r", *args, **kwargs):
            if any(flag in mode for flag in "wax+") and _matches(file, pattern):
                _freeze(marker, f"opening {file} for writing")
            return real_open(file, mode, *args, **kwargs)

        builtins.open = open_
        return
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        hit = _matches(dst, pattern)
        if hit and kind == "before-replace":
            _freeze(marker, f"about to move {src} to {dst}")
        real_replace(src, dst, *args, **kwargs)
        if hit:
            _freeze(marker, f"moved {src} to {dst}")

    os.replace = replace


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marker", type=Path, required=True, help="File written when the point is reached.")
    parser.add_argument("--at", required=True, help="KIND:PATTERN, e.g. before-replace:index.json")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then a manage.py command and its arguments")
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("give a manage.py command after --")
    install(options.at, options.marker)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *command])


def stop_at(
    at: str, command: list[str], *, env: dict[str, str], folder: Path, timeout: float = 180
) -> subprocess.Popen:
    """Start `manage.py <command>` in a child that freezes at `at`; return it once it is there (alive).

    Raises AssertionError with the child's output if it ends first, TimeoutError if it takes
    longer than `timeout` seconds (generous: a child on a busy machine imports torch first).
    """
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "crashpoint.reached"
    marker.unlink(missing_ok=True)
    log_path = folder / "crashpoint.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmsite.tests.crashpoint", "--marker", str(marker), "--at", at, "--", *command],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"the child ended before reaching {at}:\n{log_path.read_text()[-5000:]}")
        if time.monotonic() > deadline:
            kill(process)
            raise TimeoutError(f"the child did not reach {at} within {timeout} s:\n{log_path.read_text()[-5000:]}")
        time.sleep(0.05)
    return process


def kill(process: subprocess.Popen) -> None:
    """SIGKILL, as the OOM killer would end it (no handler runs, nothing is cleaned up), and reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


if __name__ == "__main__":
    main(sys.argv[1:])
