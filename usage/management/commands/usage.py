"""`manage.py usage report|prune`: sum the usage ledger by user, key or model; drop old limit counters.

manage.py usage report --since 2026-11-01 --by model
manage.py usage report --since 7d --by key --user alice --csv usage.csv
manage.py usage report --since 24h --csv -          # CSV on stdout, nothing else
manage.py usage prune
manage.py usage recount             # after a crash, before serving: counters rebuilt from the ledger
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounts.models import ApiKey
from llmsite.admin_csv import safe_cell
from usage import selectors, services

DEFAULT_SINCE = "30d"
RELATIVE = re.compile(r"(\d+)([dh])")
UNITS = {"d": "days", "h": "hours"}
# Counters of windows older than this are never read again: the longest window, a month, is
# at most 31 days, so the current month's counters always stay.
PRUNE_DAYS = 40
LONGEST_WINDOW_DAYS = 31
# A report lists every group (users, keys, models are few), not the selector's default top rows.
EVERY_GROUP = 1_000_000
NUMBERS = ("requests", "cached_requests", "prompt_tokens", "completion_tokens", "total_tokens")
HEADERS = ("requests", "cached", "prompt tokens", "completion tokens", "total tokens")


def when(value: str, *, now: datetime, option: str, end_of_day: bool = False) -> datetime:
    """A --since/--until value as an aware datetime: `7d`/`24h` before now, a date (its midnight, or with
    `end_of_day` the next one, so the day is included), or an ISO 8601 date-time."""
    text = value.strip()
    relative = RELATIVE.fullmatch(text)
    if relative:
        return now - timedelta(**{UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        day = parse_date(text)
        moment = None if day else parse_datetime(text)
    except ValueError:  # well-formed but impossible, like 2026-02-30
        day = moment = None
    if day is not None:
        midnight = timezone.make_aware(datetime.combine(day, time.min))
        return midnight + timedelta(days=1) if end_of_day else midnight
    if moment is not None:
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment)
    raise CommandError(
        f"{option} {value!r}: expected a date (2026-11-01), an ISO 8601 date-time (2026-11-01T08:00Z)"
        " or a duration before now (7d, 24h)"
    )


def key_labels(ids: Sequence[int | None]) -> dict[int, str]:
    """`name (owner, llms_<prefix>_…)` of the API keys with these ids."""
    keys = ApiKey.objects.filter(pk__in=[pk for pk in ids if pk is not None]).select_related("user")
    return {key.pk: f"{key.name or 'unnamed'} ({key.user.get_username()}, {key.display_prefix})" for key in keys}


def label_rows(rows: list[dict[str, Any]], by: str) -> list[tuple[str, dict[str, Any]]]:
    """(what the row is about, the row), the most tokens first."""
    if by == "user":
        labels = [row["username"] or "(no user)" for row in rows]
    elif by == "key":
        names = key_labels([row["key"] for row in rows])
        labels = [names.get(row["key"], f"#{row['key']}") if row["key"] else "(no key: signed in)" for row in rows]
    else:
        labels = [row["model"] for row in rows]
    labelled = list(zip(labels, rows, strict=True))
    return sorted(labelled, key=lambda pair: (-pair[1]["total_tokens"], -pair[1]["cost"], pair[0]))


def money(cost: float) -> str:
    return f"{cost:.6f}"


def shown(moment: datetime) -> str:
    """A datetime in the site's time zone, to the minute, with the zone's name."""
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M} {timezone.get_current_timezone_name()}"


class Command(BaseCommand):
    help = (
        "usage report [--since 30d] [--until …] [--by user|key|model] [--user NAME] [--csv PATH|-]: "
        "requests, tokens and spend from the usage ledger. "
        f"usage prune: drop limit counters older than {PRUNE_DAYS} days. "
        "usage recount: rebuild the limit counters from the ledger (while no server runs)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{report,prune,recount}")
        report = actions.add_parser("report", help="Sum the ledger by user, API key or model.")
        report.add_argument(
            "--since",
            default=DEFAULT_SINCE,
            help=f"from this date, ISO 8601 date-time or duration before now like 7d, 24h (default {DEFAULT_SINCE})",
        )
        report.add_argument("--until", help="up to this date (included), date-time or duration before now")
        report.add_argument("--by", default="user", help="group by user, key or model (default user)")
        report.add_argument("--user", help="only this user's usage (a username)")
        report.add_argument(
            "--csv", dest="csv_path", metavar="PATH", help="also write the rows to this CSV file; - writes only CSV"
        )
        prune = actions.add_parser("prune", help=f"Drop limit counters older than {PRUNE_DAYS} days.")
        prune.add_argument("--days", type=int, default=PRUNE_DAYS, help=f"keep this many days (default {PRUNE_DAYS})")
        actions.add_parser(
            "recount",
            help="Rebuild the limit counters from the ledger, dropping holds of requests a crash left unsettled. "
            "Run it while no server runs.",
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "report":
            self._report(**options)
        elif action == "recount":
            removed = services.counters_recount()
            self.stdout.write(f"Dropped {removed} usage counters; they reopen from the ledger at their next use.")
        else:
            self._prune(days=options["days"])

    def _report(
        self, *, since: str, until: str | None, by: str, user: str | None, csv_path: str | None, **options: Any
    ) -> None:
        if by not in selectors.GROUPS:
            raise CommandError(f"--by {by!r}: expected one of {', '.join(selectors.GROUPS)}")
        now = timezone.now()
        start = when(since, now=now, option="--since")
        end = when(until, now=now, option="--until", end_of_day=True) if until else now
        if end <= start:
            raise CommandError(
                f"--until {until} (up to {shown(end)}) must be after --since {since} (from {shown(start)})"
            )
        owner = None
        if user is not None:
            owner = get_user_model().objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"No user named {user!r}.")

        rows = selectors.buckets(since=start, until=end, user=owner)
        labelled = label_rows(selectors.breakdown(rows, by, limit=EVERY_GROUP), by)
        totals = selectors.totals(rows)
        if csv_path == "-":
            self._write_csv(self.stdout, by, labelled)
            return
        whose = f" of {owner.get_username()}" if owner else ""
        self.stdout.write(f"Usage{whose} from {shown(start)} to {shown(end)}, by {by}")
        self._write_table(by, labelled, totals)
        if csv_path:
            path = Path(csv_path)
            try:
                with path.open("w", newline="", encoding="utf-8") as out:
                    self._write_csv(out, by, labelled)
            except OSError as exc:
                raise CommandError(f"--csv {csv_path}: {exc.strerror}") from exc
            self.stderr.write(f"Wrote {len(labelled)} rows to {path}.")

    def _write_table(self, by: str, labelled: list[tuple[str, dict[str, Any]]], totals: dict[str, Any]) -> None:
        header = (by, *HEADERS, f"cost ({settings.USAGE_CURRENCY})")
        lines = [(label, *(f"{row[n]:,}" for n in NUMBERS), money(row["cost"])) for label, row in labelled]
        total = ("total", *(f"{totals[n]:,}" for n in NUMBERS), money(totals["cost"]))
        widths = [max(len(line[i]) for line in (header, *lines, total)) for i in range(len(header))]

        def aligned(cells: Sequence[str]) -> str:
            first = cells[0].ljust(widths[0])
            return "  ".join([first, *(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))])

        rule = tuple("-" * width for width in widths)
        for line in (header, rule, *lines, rule, total):
            self.stdout.write(aligned(line))

    def _write_csv(self, out: Any, by: str, labelled: list[tuple[str, dict[str, Any]]]) -> None:
        writer = csv.writer(out)
        writer.writerow([by, *NUMBERS, "cost"])
        for label, row in labelled:
            writer.writerow([safe_cell(label), *(row[n] for n in NUMBERS), money(row["cost"])])

    def _prune(self, *, days: int) -> None:
        if days <= LONGEST_WINDOW_DAYS:
            raise CommandError(f"--days must be more than {LONGEST_WINDOW_DAYS}: this month's counters are in use")
        removed = services.counters_prune(before=timezone.now() - timedelta(days=days))
        self.stdout.write(f"Removed {removed} usage counters older than {days} days.")
