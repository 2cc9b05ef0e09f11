"""The evaluation after every training run, the command line, and evaluations whose worker died."""

from __future__ import annotations

import socket
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from evaluation import services
from evaluation.models import Evaluation
from jobs.signals import worker_tick
from jobs.testing import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"max_length": 64, "batch_size": 4, "learning_rate": 5e-3, "warmup_ratio": 0.0, "max_steps": 1}


def train(name: str):
    from training import services as training

    run = training.run_create(source="cli", claim=True, name=name, datasets=["dialogue"], **FAST)
    run = training.run_execute(run)
    assert run.status == "succeeded", run.error
    return run


def test_a_succeeded_run_s_model_is_evaluated_against_the_default(eval_settings):
    eval_settings.EVALUATION_AUTO_LIMIT = 2
    run = train("tuned")
    evaluation = Evaluation.objects.get()
    assert (evaluation.model, evaluation.baseline, evaluation.training_run_id) == ("tuned", "tiny-a", run.pk)
    assert (evaluation.status, evaluation.source, evaluation.options["limit"]) == ("queued", "training", 2)
    assert evaluation.task_id is not None

    run_jobs("training")
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded", evaluation.error
    tuned = evaluation.metrics["models"]["tuned"]
    assert tuned["eval_loss"] == pytest.approx(run.eval_loss_after, rel=1e-5)  # the run's own split
    assert tuned["questions"] == 2


def test_no_evaluation_follows_training_when_turned_off_or_when_the_run_fails(eval_settings):
    eval_settings.EVALUATION_AFTER_TRAINING = False
    train("tuned")
    assert not Evaluation.objects.exists()

    from training import services as training

    eval_settings.EVALUATION_AFTER_TRAINING = True
    failing = training.run_create(source="cli", claim=True, name="never", datasets=["dialogue"], **FAST)
    eval_settings.TRAINING_BASE_MODEL = "tiny-a"
    (eval_settings.MODELS_DIR / "tiny-a").unlink()  # its base model is gone: the run fails
    assert training.run_execute(failing).status == "failed"
    assert not Evaluation.objects.exists()


def test_the_evaluate_command_prints_the_comparison(eval_settings, capsys):
    call_command("evaluate", "tiny-b", "--against", "tiny-a", "--limit", "1", "--no-progress")
    out = capsys.readouterr().out
    evaluation = Evaluation.objects.get()
    assert (evaluation.status, evaluation.source) == ("succeeded", "cli")
    lines = out.splitlines()
    assert lines[0] == f"evaluation #{evaluation.pk}: tiny-b against tiny-a"
    assert lines[1].split() == ["model", "tiny-b", "tiny-a"]
    loss = evaluation.metrics["models"]["tiny-b"]["eval_loss"]
    assert lines[2].split()[:3] == ["eval", "loss", f"{loss:.4f}"]
    assert lines[4].startswith("accuracy")

    with pytest.raises(CommandError, match="limit: limit must be a whole number from 1"):
        call_command("evaluate", "tiny-b", "--limit", "0")


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_an_evaluation_whose_worker_died_is_failed_with_the_reason(eval_settings):
    evaluation = services.evaluation_create(model="tiny-b", claim=True)
    worker = f"{socket.gethostname()}:{dead_pid()}"
    Evaluation.objects.filter(pk=evaluation.pk).update(worker=worker)
    worker_tick.send(sender=None, startup=False)  # what each job worker does on its heartbeat
    evaluation.refresh_from_db()
    assert evaluation.status == "failed"
    assert evaluation.error == f"the evaluation was interrupted: its worker process {worker} ended while it ran"


def test_an_evaluation_silent_too_long_is_failed_and_a_live_one_is_left_alone(eval_settings):
    from django.utils import timezone

    eval_settings.EVALUATION_STALE_SECONDS = 60
    silent = services.evaluation_create(model="tiny-b", claim=True)
    Evaluation.objects.filter(pk=silent.pk).update(
        worker="elsewhere:1", heartbeat_at=timezone.now() - timezone.timedelta(seconds=61)
    )
    alive = services.evaluation_create(model="tiny-b", claim=True)  # this process, beating now
    assert services.evaluations_reap() == 1
    assert Evaluation.objects.get(pk=silent.pk).status == "failed"
    assert "stopped sending heartbeats" in Evaluation.objects.get(pk=silent.pk).error
    assert Evaluation.objects.get(pk=alive.pk).status == "running"
