"""Evaluating tiny models end to end: figures per model and per example, reproducible, on the trainer's split."""

from __future__ import annotations

import math

import pytest
from django.core.cache import caches

from evaluation import engine, services
from evaluation.models import Evaluation, EvaluationExample
from inference.engine import get_engine
from training.trainer import split

pytestmark = pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection


def run_here(**fields) -> Evaluation:
    evaluation = services.evaluation_create(source="cli", claim=True, **fields)
    return services.evaluation_execute(evaluation)


def test_it_evaluates_a_model_against_the_default_per_model_and_per_example(eval_settings):
    evaluation = run_here(model="tiny-b", limit=3)
    assert evaluation.status == "succeeded", evaluation.error
    assert (evaluation.model, evaluation.baseline, evaluation.judge) == ("tiny-b", "tiny-a", "")
    assert (evaluation.done, evaluation.total) == (8, 8)  # per model: its loss and 3 answers

    figures = evaluation.metrics["models"]
    assert set(figures) == {"tiny-b", "tiny-a"}
    for model in ("tiny-a", "tiny-b"):
        assert figures[model]["questions"] == 3
        assert figures[model]["eval_loss"] > 0
        assert figures[model]["perplexity"] == pytest.approx(math.exp(figures[model]["eval_loss"]))
        assert figures[model]["eval_examples"] == 5  # 53 dialogue conversations, 10 % held out
    assert figures["tiny-a"]["eval_loss"] != figures["tiny-b"]["eval_loss"]
    assert evaluation.metrics["judge"] is None

    qa = EvaluationExample.objects.filter(evaluation=evaluation, kind="qa")
    assert qa.count() == 6
    first = services.questions()[0]
    row = qa.get(model="tiny-b", index=0)
    assert (row.question_id, row.prompt, row.expected) == (first.id, first.question, list(first.answers))
    assert row.correct == engine.is_correct(row.answer, first.answers)
    assert row.answer  # the tiny model said something (nonsense, but checked)

    # The loss rows are the held-out split the trainer draws with its defaults (dialogue, 0.1, seed 0).
    from training import datasets as ds

    examples = ds.load("dialogue", data_dir=None, max_examples=10_000, max_bytes=10**8)
    _, held = split(examples, 0.1, 0)
    losses = EvaluationExample.objects.filter(evaluation=evaluation, kind="loss", model="tiny-b").order_by("index")
    assert [r.question_id for r in losses] == [e.source for e in held]
    assert evaluation.options["split"]["datasets"] == ["dialogue"]


def test_the_same_model_and_data_give_the_same_figures_twice(eval_settings):
    first = run_here(model="tiny-b", against="tiny-a", limit=2)
    caches["responses"].clear()  # answered again by the models, not from the response cache
    get_engine().reset()
    second = run_here(model="tiny-b", against="tiny-a", limit=2)
    assert first.status == second.status == "succeeded"
    assert first.metrics == second.metrics

    def answers(evaluation):
        return list(
            EvaluationExample.objects.filter(evaluation=evaluation).values_list("kind", "model", "answer", "loss")
        )

    assert answers(first) == answers(second)


def test_a_run_s_model_is_measured_on_the_run_s_own_split_and_matches_the_trainer(eval_settings):
    from training import services as training

    fields = {"max_length": 64, "batch_size": 4, "learning_rate": 5e-3, "warmup_ratio": 0.0, "max_steps": 2}
    run = training.run_create(
        source="cli", claim=True, name="tuned", datasets=["dialogue"], eval_fraction=0.2, seed=7, **fields
    )
    eval_settings.EVALUATION_AFTER_TRAINING = False  # measured here instead
    run = training.run_execute(run)
    assert run.status == "succeeded", run.error

    evaluation = run_here(model="tuned", limit=1)
    assert evaluation.training_run_id == run.pk
    assert evaluation.options["split"] == {
        "datasets": ["dialogue"],
        "eval_fraction": 0.2,
        "seed": 7,
        "max_length": 64,
        "batch_size": 4,
        "training_run": run.pk,
    }
    tuned = evaluation.metrics["models"]["tuned"]
    # The trainer's own figure for the saved weights, reproduced from the folder.
    assert tuned["eval_loss"] == pytest.approx(run.eval_loss_after, rel=1e-5)
    assert tuned["eval_examples"] == run.eval_examples
    assert evaluation.metrics["models"]["tiny-a"]["eval_loss"] == pytest.approx(run.eval_loss_before, rel=1e-5)


def test_a_model_that_answers_nothing_fails_the_evaluation_with_the_reason(eval_settings, models_dir):
    (models_dir / "broken").mkdir()
    (models_dir / "broken" / "config.json").write_text("{}")
    evaluation = run_here(model="broken", limit=1)
    assert evaluation.status == "failed"
    assert "broken answered no question" in evaluation.error
    broken = evaluation.metrics["models"]["broken"]
    assert broken["eval_loss"] is None
    assert "cannot load" in broken["loss_note"]
