"""Evaluate a model (against a baseline) in this process, with a progress bar; prints the comparison table."""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from evaluation import services
from evaluation.models import Evaluation
from llmsite.errors import ApplicationError


class Command(BaseCommand):
    help = "Evaluate a model of the pool: held-out loss, answer accuracy, and (with a judge) pairwise wins."

    def add_arguments(self, parser):
        parser.add_argument("model", help="The pool id of the model (a folder under MODELS_DIR, or provider/model).")
        parser.add_argument("--against", help="The baseline's pool id (default: the site's default model).")
        parser.add_argument("--judge", help="A pool id that judges answers pairwise (default: EVALUATION_JUDGE_MODEL).")
        parser.add_argument("--limit", type=int, help="Questions (default: EVALUATION_DEFAULT_LIMIT).")
        parser.add_argument("--max-tokens", type=int, help="Tokens per answer (default: EVALUATION_MAX_NEW_TOKENS).")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, model, against=None, judge=None, limit=None, max_tokens=None, no_progress=False, **options):
        services.evaluations_reap()
        try:
            evaluation = services.evaluation_create(
                model=model, against=against, judge=judge, limit=limit, max_tokens=max_tokens, source="cli", claim=True
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from exc
        against_text = f" against {evaluation.baseline}" if evaluation.baseline else ""
        judge_text = f", judged by {evaluation.judge}" if evaluation.judge else ""
        self.stdout.write(f"evaluation #{evaluation.pk}: {evaluation.model}{against_text}{judge_text}")
        bar = tqdm(unit="step", desc="evaluating", disable=no_progress, file=self.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            evaluation = services.evaluation_execute(evaluation, on_progress=progress)
        except KeyboardInterrupt:
            raise CommandError(f"interrupted: evaluation #{evaluation.pk} is recorded as cancelled") from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            bar.close()
        self.stdout.write(comparison_table(evaluation))
        if evaluation.status != Evaluation.Status.SUCCEEDED:
            raise CommandError(f"evaluation #{evaluation.pk} {evaluation.status}: {evaluation.error}")


def _num(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def comparison_table(evaluation: Evaluation) -> str:
    """Figures per model, one column each, then the judge's verdicts."""
    figures = evaluation.metrics.get("models", {})
    models = evaluation.models
    rows = [
        ("model", [m for m in models]),
        ("eval loss", [_num(figures.get(m, {}).get("eval_loss")) for m in models]),
        ("perplexity", [_num(figures.get(m, {}).get("perplexity"), 2) for m in models]),
        (
            "accuracy",
            [
                f"{_num(figures.get(m, {}).get('accuracy'), 3)} ({figures.get(m, {}).get('correct', 0)}/"
                f"{figures.get(m, {}).get('questions', 0)})"
                for m in models
            ],
        ),
    ]
    width = max(len(label) for label, _ in rows)
    columns = [max(len(row[1][i]) for row in rows) for i in range(len(models))]
    lines = [
        "  ".join([label.ljust(width), *(value.ljust(columns[i]) for i, value in enumerate(values))]).rstrip()
        for label, values in rows
    ]
    judge = evaluation.metrics.get("judge")
    if judge:
        lines.append(
            f"judge {judge['model']}: {evaluation.model} wins {judge['wins']}, loses {judge['losses']}, "
            f"ties {judge['ties']} of {judge['judged']} (win rate {_num(judge['win_rate'], 3)})"
        )
    return "\n".join(lines)
