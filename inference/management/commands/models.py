"""List the model pool: every id `--model` (and a client's `model`) may name, with its state."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from inference import selectors

COLUMNS = ("id", "kind", "state", "memory", "queue", "default", "fallbacks")


class Command(BaseCommand):
    help = "List the callable models (id, kind, state, memory, queue, default, fallbacks); --json for a program."

    def add_arguments(self, parser):
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="print the rows as JSON (as GET /api/v1/models)"
        )

    def handle(self, *args, as_json: bool = False, **options):
        rows = selectors.models_list()
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2, default=str))
            return
        self.stdout.write(table(rows))
        for row in rows:
            if row.get("reason"):
                self.stdout.write(f"{row['id']}: {row['reason']}")
        # This process holds its own pool: a running server's states are at GET /api/v1/models.
        self.stderr.write("(states as this process sees them; a running server's: GET /api/v1/models)")


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    memory = row.get("memory_mb")
    return (
        row["id"],
        row["kind"],
        row["state"],
        "-" if memory is None else f"{memory:.0f} MB",
        str(row.get("queue", 0)),
        "yes" if row["default"] else "",
        ", ".join(row["fallbacks"]) or "-",
    )


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain-text table with a header, columns padded to their widest cell."""
    lines = [tuple(name.upper() for name in COLUMNS), *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )
