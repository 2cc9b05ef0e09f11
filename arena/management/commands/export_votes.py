"""`manage.py export_votes [--output FILE]`: every voted battle as JSONL (stdout by default)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from arena import services


class Command(BaseCommand):
    help = "Write every voted arena battle (prompt, both answers and models, the vote) as JSON lines."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--output", "-o", help="write to this file (replaced atomically) instead of stdout")

    def handle(self, *args: Any, output: str | None = None, **options: Any) -> None:
        rows = services.battle_export_rows()
        if output is None:
            for row in rows:
                self.stdout.write(services.jsonl_line(row), ending="")
            return
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        count = 0
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(services.jsonl_line(row))
                    count += 1
            os.replace(tmp, target)  # never a half-written file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.stderr.write(f"wrote {count} battles to {target}")
