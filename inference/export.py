"""Export a local transformers model to OpenVINO IR, once, for the OpenVINO engine.

Plain Python, no Django. The exporter is optimum-intel, whose pins (transformers<5.6) the site
cannot share: its few packages live in `<venv>/exporter` (requirements-export.txt, installed
by `make`), and the export runs in a subprocess with that folder first on PYTHONPATH, so the
site's own transformers is never shadowed. The IR goes to `<folder>/openvino/<precision>/`,
written to a temporary folder first and moved into place with a marker last, so a half-written
export is never served.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from inference.providers.openvino import MARKER, PRECISIONS, is_exported, openvino_folder

DEFAULT_EXPORTER = Path(sys.prefix) / "exporter"
EXPORT_TIMEOUT_SECONDS = 3600


class ExportFailed(Exception):
    """The exporter is missing or failed; the message says what to do or what it printed."""


def exporter_problem(exporter: Path = DEFAULT_EXPORTER) -> str:
    """'' when the exporter is installed in `exporter`; else what to run."""
    if not (exporter / "optimum" / "intel").is_dir():
        return f"the OpenVINO exporter is not installed in {exporter}; run `make models` (or make run)"
    return ""


def int4_group_size(folder: Path) -> int:
    """The largest usual group size that divides the model's hidden size (SmolLM2-135M: 576 → 64)."""
    hidden = int(json.loads((folder / "config.json").read_text()).get("hidden_size") or 0)
    return next((size for size in (128, 64, 32) if hidden and hidden % size == 0), 32)


def export_command(folder: Path, precision: str, output: Path) -> list[str]:
    command = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino"]
    command += ["--model", str(folder), "--task", "text-generation-with-past", "--weight-format", precision]
    if precision == "int4":  # every layer in 4 bits, no calibration data (none can be downloaded)
        command += ["--group-size", str(int4_group_size(folder)), "--ratio", "1.0"]
    return [*command, str(output)]


def export_openvino(
    folder: Path,
    precision: str = "fp32",
    *,
    exporter: Path = DEFAULT_EXPORTER,
    on_output: Callable[[str], None] | None = None,
) -> Path:
    """The OpenVINO form of `folder` at `precision`, exported now unless it already is; returns its folder.

    Raises ExportFailed with the exporter's last lines when it fails. `on_output` sees each line
    the exporter prints (a progress display).
    """
    if precision not in PRECISIONS:
        raise ExportFailed(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    target = openvino_folder(folder, precision)
    if is_exported(folder, precision):
        return target
    problem = exporter_problem(exporter)
    if problem:
        raise ExportFailed(problem)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target.parent, precision)
    staging = target.parent / f".{precision}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    environment = {**os.environ, "PYTHONPATH": str(exporter), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.monotonic()
    lines: list[str] = []
    try:
        with subprocess.Popen(  # noqa: S603 - this interpreter, arguments built here
            export_command(folder, precision, staging),
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                lines = [*lines[-40:], line.rstrip()]
                if on_output is not None:
                    on_output(line.rstrip())
            code = process.wait(timeout=EXPORT_TIMEOUT_SECONDS)
        if code != 0 or not (staging / "openvino_model.xml").is_file():
            tail = "\n".join(lines[-15:])
            raise ExportFailed(f"exporting {folder} to OpenVINO {precision} failed (exit {code}):\n{tail}")
        marker = {"precision": precision, "source": str(folder), "seconds": round(time.monotonic() - started, 1)}
        (staging / MARKER).write_text(json.dumps(marker))  # last: the folder is complete
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _remove_abandoned(parent: Path, precision: str) -> None:
    """Drop staging folders of exports whose process is gone (killed mid-export): never loaded, only disk."""
    for staging in parent.glob(f".{precision}.partial-*"):
        pid = staging.name.rsplit("-", 1)[1]
        if not (pid.isdigit() and psutil.pid_exists(int(pid))):
            shutil.rmtree(staging, ignore_errors=True)
