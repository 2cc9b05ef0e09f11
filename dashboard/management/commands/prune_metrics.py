"""`manage.py prune_metrics [--days N]`: delete request metrics older than the retention."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.services import request_metrics_prune


class Command(BaseCommand):
    help = "Delete request metrics older than METRICS_RETENTION_DAYS (servers also do it about hourly)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="keep this many days instead of METRICS_RETENTION_DAYS"
        )

    def handle(self, *args: Any, days: int | None = None, **options: Any) -> None:
        days = settings.METRICS_RETENTION_DAYS if days is None else days
        if days < 1:
            raise CommandError("--days must be at least 1")
        deleted = request_metrics_prune(older_than_days=days)
        self.stdout.write(f"Deleted {deleted} request metrics older than {days} days.")
