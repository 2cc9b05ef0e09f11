"""The OpenVINO export as the commands run it (prepare_models, export_openvino): a progress bar, clear errors."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inference.export import ExportFailed, export_openvino
from inference.providers.openvino import is_exported, openvino_folder

# What the exporter prints on its way, in order: each one moves the bar a step.
STAGES = ("Loading weights", "Export", "Converting", "tokenizer")


def export_for_engine(command: BaseCommand, folder: Path, name: str, precisions: list[str] | None = None) -> None:
    """Export `folder` to each precision (LLM_EXPORT_PRECISIONS by default) unless done; CommandError on failure."""
    for precision in precisions or settings.LLM_EXPORT_PRECISIONS:
        if is_exported(folder, precision):
            command.stdout.write(
                f"OpenVINO {precision} of {name}: already exported at {openvino_folder(folder, precision)}"
            )
            continue
        started = time.monotonic()
        with tqdm(total=len(STAGES), desc=f"Exporting {name} to OpenVINO {precision}", unit="stage") as bar:
            seen: set[str] = set()

            def on_output(line: str, bar: tqdm = bar, seen: set[str] = seen) -> None:
                for stage in STAGES:
                    if stage not in seen and stage.lower() in line.lower():
                        seen.add(stage)
                        bar.update(1)

            try:
                target = export_openvino(folder, precision, on_output=on_output)
            except ExportFailed as exc:
                raise CommandError(str(exc)) from exc
            bar.update(bar.total - bar.n)
        command.stdout.write(
            command.style.SUCCESS(
                f"OpenVINO {precision} of {name}: exported to {target} in {time.monotonic() - started:.0f} s"
            )
        )
