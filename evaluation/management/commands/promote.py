"""Make a model the site's default, logged with a reason (`--rollback`: undo the newest promotion)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evaluation import services
from llmsite.errors import ApplicationError


class Command(BaseCommand):
    help = "Promote a model to the site's default (logged), or roll the newest promotion back."

    def add_arguments(self, parser):
        parser.add_argument("model", nargs="?", help="The pool id of the model to make the default.")
        parser.add_argument("--evaluation", type=int, help="The evaluation that supports it (its id).")
        parser.add_argument("--reason", default="", help="Why (required to promote; kept in the audit log).")
        parser.add_argument(
            "--rollback", action="store_true", help="Restore the default from before the newest promotion."
        )

    def handle(self, *args, model=None, evaluation=None, reason="", rollback=False, **options):
        if rollback == bool(model):
            raise CommandError("name a model to promote, or --rollback (not both)")
        try:
            if rollback:
                row = services.model_rollback(reason=reason, load_here=False)
            else:
                row = services.model_promote(model=model, reason=reason, evaluation_id=evaluation, load_here=False)
        except ApplicationError as exc:
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from exc
        verb = "rolled back to" if rollback else "promoted"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} {row.model} (was {row.previous_model}); promotion #{row.pk}")
            + "\nevery server switches within LLM_CONFIG_CHECK_SECONDS; requests in flight finish on the old model"
        )
