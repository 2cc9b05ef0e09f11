"""List feedback, or export it: positive ratings as chat training examples, negative ones for review."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from feedback import services
from feedback.models import Feedback
from feedback.selectors import feedback_filter, parse_when


def when(value: str) -> dt.date | dt.datetime:
    """A --since/--until value: YYYY-MM-DD (the whole day) or an ISO 8601 date-time."""
    parsed = parse_when(value)
    if parsed is None:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time")
    return parsed


def one_line(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class _Unbuffered:
    """The command's stderr as tqdm wants it: written as given (OutputWrapper would end each redraw with a newline)."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


def default_negative_path(out: Path) -> Path:
    """sft.jsonl -> sft.negative.jsonl, beside it."""
    return out.with_name(f"{out.stem}.negative{out.suffix or '.jsonl'}")


class Command(BaseCommand):
    help = (
        "feedback list [--rating -1] [--since DATE]: show ratings. "
        "feedback export --out FILE.jsonl: positive ratings as chat training examples "
        '({"messages": [...]} per line), negative ones beside it for review.'
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="{list,export}")

        def filters(sub):
            sub.add_argument("--since", type=str, help="From this date (YYYY-MM-DD) or date-time, inclusive.")
            sub.add_argument("--until", type=str, help="Up to this date or date-time, inclusive.")
            sub.add_argument("--provider", help="Only answers from this provider (hf, anthropic, openai).")
            sub.add_argument("--model", help="Only answers from this model.")

        listing = actions.add_parser("list", help="Show feedback, newest first.")
        listing.add_argument("--rating", type=int, choices=[1, -1], help="Only this rating.")
        listing.add_argument("--limit", type=int, default=100, help="At most this many rows (default 100).")
        filters(listing)

        export = actions.add_parser("export", help="Write training examples and a review file.")
        export.add_argument("--out", required=True, help="JSONL file for the positively rated exchanges.")
        export.add_argument(
            "--negative-out",
            help="JSONL file for the negatively rated ones (default: OUT with .negative before .jsonl).",
        )
        export.add_argument("--no-progress", action="store_true", help="Hide the progress bars.")
        filters(export)

    def handle(self, *args, action: str, **options):
        filters = {
            "since": when(options["since"]) if options.get("since") else None,
            "until": when(options["until"]) if options.get("until") else None,
            "provider": options.get("provider"),
            "model": options.get("model"),
        }
        if action == "list":
            self._list(rating=options.get("rating"), limit=options["limit"], filters=filters)
        else:
            out = Path(options["out"])
            negative = Path(options["negative_out"]) if options.get("negative_out") else default_negative_path(out)
            if out.resolve() == negative.resolve():
                raise CommandError("--out and --negative-out must be different files")
            self._export(out, negative, filters=filters, progress=not options["no_progress"])

    def _list(self, *, rating: int | None, limit: int, filters: dict) -> None:
        if limit < 1:
            raise CommandError("--limit must be at least 1")
        rows = feedback_filter(Feedback.objects.select_related("user"), rating=rating, **filters)
        total = rows.count()
        self.stdout.write(f"{'id':>6}  {'created':<16}  {'user':<12}  {'rating':>6}  {'model':<24}  comment")
        for row in rows.order_by("-created", "-id")[:limit]:
            self.stdout.write(
                f"{row.pk:>6}  {row.created:%Y-%m-%d %H:%M}  {one_line(row.user.get_username(), 12):<12}  "
                f"{row.rating:>+6}  {one_line(row.model, 24):<24}  {one_line(row.comment, 60)}"
            )
        shown = min(total, limit)
        self.stderr.write(f"{shown} of {total} shown" + ("" if shown == total else f" (--limit {limit})"))

    def _export(self, out: Path, negative: Path, *, filters: dict, progress: bool) -> None:
        examples = self._write(out, services.export_training_examples, 1, "positive", filters, progress)
        reviews = self._write(negative, services.export_review_items, -1, "negative", filters, progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"{examples} training examples -> {out}; {reviews} negatively rated exchanges for review -> {negative}"
            )
        )

    def _write(self, path: Path, export, rating: int, label: str, filters: dict, progress: bool) -> int:
        """Write one export to `path` under a progress bar counting the feedback rows read."""
        total = services.export_count(rating=rating, **filters)
        bar_file = _Unbuffered(self.stderr)
        with tqdm(total=total, unit="rating", desc=label, disable=not progress, file=bar_file) as bar:
            return services.write_jsonl(export(progress=lambda: bar.update(1), **filters), path)
