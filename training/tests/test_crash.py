"""A job worker killed while it trains (writing its checkpoint), and a checkpoint that does not fit on the disk.

The victim is a real `manage.py db_worker` process on this test's database, running the training job
of a run of the tiny model, stopped at a chosen point of its checkpoint save (llmsite.tests.crashpoint)
and killed with SIGKILL. The restart is a new worker starting: it ends both rows the dead one held,
the run's (`TrainingRun`) and the job's (django_tasks_db's `DBTaskResult`).
"""

from __future__ import annotations

import io
import os

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_tasks_db.models import DBTaskResult

from conftest import client_for
from inference.registry import local_models
from jobs.testing import run_jobs
from llmsite.errors import ApplicationError
from llmsite.testing import database_url
from llmsite.tests.crashpoint import kill, stop_at
from training import services
from training.models import TrainingRun
from training.tests.conftest import FAST, TINY

# transaction=True: the worker processes read and write committed rows.
pytestmark = [pytest.mark.crash, pytest.mark.django_db(transaction=True)]

NAME = "crashy"


def worker_env(settings) -> dict[str, str]:
    """A worker process on this test's database, training the tiny model into this test's MODELS_DIR."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "MODELS_DIR": str(settings.MODELS_DIR),
        "TRAINING_DATASETS_DIR": str(settings.TRAINING_DATASETS_DIR),
        "TRAINING_BASE_MODEL": TINY,
        "TRAINING_DEVICE": "cpu",
        "TRAINING_THREADS": "1",
        "LLM_EXPORT_AFTER_TRAINING": "False",
        "HF_HUB_OFFLINE": "1",
    }


WORKER = ["db_worker", "--batch", "--queue-name", "training", "--no-startup-delay", "--interval", "0"]


def assert_job_failed_with_its_worker(run: TrainingRun) -> None:
    job = DBTaskResult.objects.get(pk=run.task_id)
    assert job.status == "FAILED" and job.finished_at is not None
    assert job.exception_class_path == "jobs.services.WorkerLost"
    assert f"its worker process {run.worker} ended while the job was running" in job.traceback


def staging_folders(models_dir) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if p.name.startswith(f".{NAME}"))


def model_ids(client) -> set[str]:
    """What a client can pick: /v1/models and the pool (GET /api/v1/models)."""
    openai_ids = {m["id"] for m in client.get("/v1/models").json()["data"]}
    pool_ids = {m["id"] for m in client.get("/api/v1/models").json()["data"]}
    return openai_ids | pool_ids


def assert_not_offered(client, admin_client) -> None:
    """NAME is no model: not listed anywhere, and asking for it is a 404."""
    assert NAME not in [m.name for m in local_models()]
    assert NAME not in model_ids(client)
    body = {"model": NAME, "messages": [{"role": "user", "content": "hi"}]}
    answer = client.post("/v1/chat/completions", body, format="json")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "model_not_found"
    pool = admin_client.get("/admin/inference/providerconfig/pool/")
    assert pool.status_code == 200 and NAME not in pool.content.decode()


@pytest.fixture
def admin_client(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pass phrase long"))
    return client


def test_a_worker_killed_while_writing_its_checkpoint_leaves_no_model_and_a_failed_run(
    training_settings, alice, admin_client
):
    run = services.run_start(name=NAME, datasets=["dialogue"], **FAST)
    models_dir = training_settings.MODELS_DIR
    # The weights are written, the tokenizer is being written: the worst moment for a reader of the folder.
    victim = stop_at("open:tokenizer_config.json", WORKER, env=worker_env(training_settings), folder=models_dir.parent)
    kill(victim)
    run.refresh_from_db()
    assert run.status == "running"  # nobody has noticed yet
    assert DBTaskResult.objects.get(pk=run.task_id).status == "RUNNING"
    assert staging_folders(models_dir), "the checkpoint was being written aside"

    # The half-written checkpoint is never listed, callable or servable, before and after the restart.
    client = client_for(alice)
    assert_not_offered(client, admin_client)
    run_jobs("training")  # a new worker starts
    assert_not_offered(client, admin_client)

    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at is not None
    assert f"its worker process {run.worker} ended while the run was running" in run.error
    assert_job_failed_with_its_worker(run)
    assert client_for(alice).get(f"/api/v1/training/runs/{run.pk}").json()["task_status"] == "FAILED"
    assert client_for(alice).get(f"/api/v1/training/runs/{run.pk}").json()["model"] is None
    assert staging_folders(models_dir) == []  # the half-written files are gone
    with pytest.raises(ApplicationError, match="has no model to serve"):
        services.run_model_serve(run_id=run.pk)

    # Nothing blocks training again under the same name.
    again = services.run_start(name=NAME, datasets=["dialogue"], **FAST)
    run_jobs("training")
    again.refresh_from_db()
    assert again.status == "succeeded", again.error
    assert NAME in model_ids(client)


def test_a_worker_killed_right_after_its_checkpoint_landed_has_the_run_recorded_as_succeeded(training_settings, alice):
    run = services.run_start(name=NAME, datasets=["dialogue"], **FAST)
    models_dir = training_settings.MODELS_DIR
    victim = stop_at(f"after-replace:{NAME}", WORKER, env=worker_env(training_settings), folder=models_dir.parent)
    kill(victim)
    run.refresh_from_db()
    assert run.status == "running"
    assert (models_dir / NAME / "config.json").is_file()

    run_jobs("training")  # a new worker starts
    run.refresh_from_db()
    assert_job_failed_with_its_worker(run)  # the job never returned: its worker died
    # The checkpoint is complete and names this run: the run is what produced it, not a failure.
    assert run.status == "succeeded", run.error
    assert run.output_dir == str(models_dir / NAME)
    assert run.final_metrics["steps"] == FAST["max_steps"]
    assert "its worker process" in run.final_metrics["recovered"]
    assert client_for(alice).get(f"/api/v1/training/runs/{run.pk}").json()["model"] == NAME
    assert NAME in model_ids(client_for(alice))


def test_a_checkpoint_that_does_not_fit_fails_the_run_naming_the_disk(training_settings, small_disk, tiny_base):
    models_dir = small_disk("1m")  # the tiny model's weights alone take about 6 MB
    (models_dir / TINY).symlink_to(tiny_base, target_is_directory=True)
    training_settings.MODELS_DIR = models_dir

    with pytest.raises(CommandError, match=f"no space left on the device holding {models_dir}"):
        call_command(
            "train", "--dataset", "dialogue", "--name", NAME, "--no-progress", "--max-steps", "2",
            "--max-length", "64", stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.status == "failed" and "no space left" in run.error
    assert sorted(p.name for p in models_dir.iterdir()) == [TINY]  # nothing half-written stays
    assert NAME not in [m.name for m in local_models()]
