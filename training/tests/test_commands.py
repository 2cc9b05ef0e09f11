"""manage.py train, and the training job run by a job worker (manage.py db_worker), on the tiny model."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django_tasks_db.models import DBTaskResult

from jobs.testing import run_jobs
from training import services
from training.models import EpochMetric, TrainingRun
from training.tests.conftest import FAST

pytestmark = pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection


def fast_args(**overrides) -> list[str]:
    values = {**FAST, "max_steps": None, **overrides}
    args = []
    for key, value in values.items():
        if value is None:
            continue
        flag = {"learning_rate": "--lr", "grad_accum_steps": "--grad-accum"}.get(key, "--" + key.replace("_", "-"))
        args += [flag, str(value)]
    return args


def test_train_saves_a_servable_model_and_records_each_epoch(training_settings):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "train", "--dataset", "dialogue", "--dataset", "knowledge", "--name", "cli-tuned", "--epochs", "2",
        *fast_args(), stdout=out, stderr=err,
    )  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.status == "succeeded" and run.source == "cli" and run.datasets == ["dialogue", "knowledge"]
    assert list(EpochMetric.objects.filter(run=run).values_list("epoch", flat=True)) == [1, 2]
    folder = training_settings.MODELS_DIR / "cli-tuned"
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    manifest = json.loads((folder / "llmsite-training.json").read_text())
    assert manifest["run"] == run.pk and manifest["datasets"] == ["dialogue", "knowledge"]
    text = out.getvalue()
    assert "eval loss" in text and "saved" in text and "reload_model --provider hf --model cli-tuned" in text
    assert "epoch 1:" in err.getvalue() and "training" in err.getvalue()  # the bar and the epoch lines


def test_train_takes_a_file_path_and_names_a_corrupt_line(training_settings, tmp_path):
    bad = tmp_path / "mine.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n[1, 2\n')
    with pytest.raises(CommandError, match=r"failed: mine\.jsonl:2: not valid JSON"):
        call_command("train", "--dataset", str(bad), "--no-progress", *fast_args(), stdout=io.StringIO())
    run = TrainingRun.objects.get()
    assert run.status == "failed" and run.datasets == [str(bad)]


def test_train_refuses_bad_options_before_loading_anything(training_settings):
    with pytest.raises(CommandError, match="epochs: epochs must be 1 to 20"):
        call_command("train", "--epochs", "99", *fast_args(), stdout=io.StringIO())
    with pytest.raises(CommandError, match="unknown dataset 'nope'"):
        call_command("train", "--dataset", "nope", *fast_args(), stdout=io.StringIO())
    assert not TrainingRun.objects.exists()


def test_a_job_worker_trains_queued_runs_and_records_the_job(training_settings):
    run = services.run_start(source="api", name="queued-one", **{**FAST, "max_steps": 2})
    assert TrainingRun.objects.get(pk=run.pk).status == "queued"
    assert DBTaskResult.objects.get(pk=run.task_id).status == "READY"
    run_jobs("training")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    job = DBTaskResult.objects.get(pk=run.task_id)
    assert job.status == "SUCCESSFUL" and job.return_value == "succeeded"


def test_a_run_cancelled_while_queued_is_skipped_by_its_job(training_settings):
    run = services.run_start(source="api", name="never", **FAST)
    services.run_cancel(run_id=run.pk)
    run_jobs("training")
    run.refresh_from_db()
    assert run.status == "cancelled" and run.step == 0
    assert DBTaskResult.objects.get(pk=run.task_id).return_value == "skipped"
