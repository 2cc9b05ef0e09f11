"""Reads: evaluations, their per-example results, the promotion log and the current default."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from evaluation.models import Evaluation, EvaluationExample, Promotion


def evaluation_list(*, status: str | None = None, model: str | None = None) -> QuerySet[Evaluation]:
    """Evaluations, newest first, optionally of one status or one model (evaluated or baseline)."""
    rows = Evaluation.objects.select_related("created_by")
    if status:
        rows = rows.filter(status=status)
    if model:
        rows = rows.filter(model=model) | rows.filter(baseline=model)
    return rows


def evaluation_get(*, evaluation_id: int) -> Evaluation | None:
    return Evaluation.objects.select_related("created_by").filter(pk=evaluation_id).first()


def example_list(*, evaluation: Evaluation, kind: str | None = None) -> QuerySet[EvaluationExample]:
    """An evaluation's per-example results: losses, then answers, then verdicts, each in question order."""
    rows = EvaluationExample.objects.filter(evaluation=evaluation).order_by("kind", "index", "id")
    return rows.filter(kind=kind) if kind else rows


def promotion_list() -> QuerySet[Promotion]:
    """The promotion log, newest first."""
    return Promotion.objects.select_related("user", "evaluation")


def default_model() -> dict[str, Any]:
    """The site's default model now: {id, provider, model, device}."""
    from inference.engine import configured_spec
    from inference.registry import model_id

    spec = configured_spec()
    return {"id": model_id(spec), "provider": spec.provider, "model": spec.model, "device": spec.device}
