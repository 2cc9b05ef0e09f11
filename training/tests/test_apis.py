"""The /api/v1/training/ endpoints: background runs, metrics, cancel, bounds, permissions, dead workers."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from django.utils import timezone

from jobs.testing import run_jobs
from training import services
from training.models import EpochMetric, TrainingRun
from training.tests.conftest import FAST

RUNS = "/api/v1/training/runs"


@pytest.fixture
def staff_client(api_client, staff):
    api_client.force_authenticate(staff)
    return api_client


@pytest.fixture
def alice_client(api_client, alice):
    api_client.force_authenticate(alice)
    return api_client


def wait_finished(client, run_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"{RUNS}/{run_id}").json()
        if body["status"] not in ("queued", "running"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s")


@pytest.mark.django_db(transaction=True)
def test_staff_start_a_run_that_trains_in_the_background_then_serve_it(
    staff_client, training_settings, job_worker, monkeypatch
):
    gate = threading.Event()
    real_train = services.train

    def gated_train(*args, **kwargs):
        assert gate.wait(30), "the test never opened the gate"
        return real_train(*args, **kwargs)

    monkeypatch.setattr(services, "train", gated_train)
    response = staff_client.post(RUNS, {"name": "tuned", "epochs": 2, **FAST, "max_steps": None}, format="json")
    # Answered while training cannot even begin: the run trains in a job worker, not the request.
    assert response.status_code == 202, response.content
    gate.set()
    run = response.json()
    assert run["status"] in ("queued", "running") and run["datasets"] == ["dialogue"]
    assert response["Location"] == f"{RUNS}/{run['id']}"

    done = wait_finished(staff_client, run["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["model"] == "tuned" and done["step"] == done["total_steps"] and done["progress"] == 1.0
    assert done["eval_loss_after"] < done["eval_loss_before"]
    assert done["perplexity_after"] < done["perplexity_before"]
    assert done["final_metrics"]["steps"] == done["step"] and done["final_metrics"]["tokens_per_second"] > 0

    metrics = staff_client.get(f"{RUNS}/{run['id']}/metrics").json()
    assert [m["epoch"] for m in metrics["results"]] == [1, 2]
    assert all(m["train_loss"] > 0 and m["eval_loss"] > 0 and m["tokens_per_second"] > 0 for m in metrics["results"])
    assert metrics["eval_loss_before"] == done["eval_loss_before"]

    # The checkpoint is a servable model: listed by the providers API, and switching to it works.
    providers = staff_client.get("/api/v1/providers").json()["providers"]
    hf = next(p for p in providers if p["name"] == "hf")
    assert "tuned" in [m["name"] for m in hf["models"]]
    assert "tuned" in [m["id"] for m in staff_client.get("/v1/models").json()["data"]]
    switched = staff_client.post(
        "/api/v1/providers/active", {"provider": "hf", "model": "tuned", "device": "cpu"}, format="json"
    )
    assert switched.status_code == 200, switched.content
    answer = staff_client.post("/api/v1/predict", {"prompt": "What is llmsite?", "max_new_tokens": 4}, format="json")
    assert answer.status_code == 200 and answer.json()["model"] == "tuned"


@pytest.mark.django_db(transaction=True)
def test_latest_shows_the_newest_run_with_its_metrics(alice_client, staff_client, training_settings, job_worker):
    assert alice_client.get("/api/v1/training/latest").json() == {"run": None, "metrics": []}
    run_id = staff_client.post(RUNS, {**FAST, "max_steps": 2, "epochs": 1}, format="json").json()["id"]
    wait_finished(staff_client, run_id)
    body = alice_client.get("/api/v1/training/latest").json()
    assert body["run"]["id"] == run_id and len(body["metrics"]) == 1
    listing = alice_client.get(RUNS, {"status": "succeeded"}).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == run_id
    assert alice_client.get(RUNS, {"status": "failed"}).json()["count"] == 0


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_running_run_between_steps(staff_client, training_settings, job_worker):
    body = {**FAST, "max_steps": 100_000, "epochs": 20, "datasets": ["dialogue", "knowledge"]}
    run_id = staff_client.post(RUNS, body, format="json").json()["id"]
    deadline = time.monotonic() + 30
    while TrainingRun.objects.get(pk=run_id).step < 1:
        assert time.monotonic() < deadline, "the run never took a step"
        time.sleep(0.02)
    response = staff_client.post(f"{RUNS}/{run_id}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    done = wait_finished(staff_client, run_id, timeout=30)
    assert done["status"] == "cancelled" and done["step"] < 100_000
    assert not (training_settings.MODELS_DIR / done["name"]).exists()
    assert staff_client.post(f"{RUNS}/{run_id}/cancel").status_code == 409


@pytest.mark.django_db
def test_a_queued_run_is_cancelled_at_once(staff_client, training_settings):
    # No worker runs here: the run waits in the queue.
    run_id = staff_client.post(RUNS, FAST, format="json").json()["id"]
    body = staff_client.post(f"{RUNS}/{run_id}/cancel").json()
    assert body["status"] == "cancelled" and body["finished_at"]
    assert staff_client.post(f"{RUNS}/999999/cancel").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_corrupt_dataset_fails_the_run_naming_the_line(staff_client, training_settings, job_worker):
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    (training_settings.TRAINING_DATASETS_DIR / "broken.jsonl").write_text(f"{good}\n{good}\n{{not json\n")
    run_id = staff_client.post(RUNS, {**FAST, "datasets": ["broken"]}, format="json").json()["id"]
    done = wait_finished(staff_client, run_id)
    assert done["status"] == "failed"
    assert done["error"].startswith("broken.jsonl:3: not valid JSON")


@pytest.mark.django_db
def test_only_staff_start_and_cancel(api_client, alice_client, training_settings):
    assert alice_client.post(RUNS, FAST, format="json").status_code == 403
    assert alice_client.post(f"{RUNS}/1/cancel").status_code == 403
    assert alice_client.get(RUNS).status_code == 200
    api_client.force_authenticate(None)
    assert api_client.get(RUNS).status_code == 401
    assert api_client.post(RUNS, FAST, format="json").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"epochs": 0}, "epochs", "epochs must be 1 to 20 (TRAINING_MAX_EPOCHS); got 0"),
        ({"epochs": 21}, "epochs", "1 to 20"),
        ({"max_steps": 0}, "max_steps", "1 to 100000 (TRAINING_MAX_STEPS)"),
        ({"batch_size": 65}, "batch_size", "1 to 64 (TRAINING_MAX_BATCH_SIZE)"),
        ({"grad_accum_steps": 0}, "grad_accum_steps", "1 to 64"),
        ({"learning_rate": 0}, "learning_rate", "more than 0 and at most 0.01"),
        ({"learning_rate": 0.5}, "learning_rate", "at most 0.01"),
        ({"warmup_ratio": 0.9}, "warmup_ratio", "at most 0.5"),
        ({"eval_fraction": -0.1}, "eval_fraction", "at least 0"),
        ({"max_length": 8}, "max_length", "16 to 2048"),
        ({"max_length": 1024}, "max_length", "at most 256, the context window of tiny-base"),
        ({"seed": -1}, "seed", "0 to 2147483647"),
        ({"datasets": []}, "datasets", "non-empty list"),
        ({"datasets": ["dialogue", "dialogue"]}, "datasets", "must not repeat"),
        (
            {"datasets": ["nope"]},
            "datasets",
            "unknown dataset 'nope'; known: dialogue, knowledge, preferences, feedback, feedback-pairs, arena",
        ),
        ({"datasets": ["../../etc/passwd"]}, "datasets", "unknown dataset"),
        ({"datasets": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}, "datasets", "at most 8 datasets"),
        ({"base_model": "missing-model"}, "base_model", "unknown model 'missing-model'"),
        ({"name": "../escape"}, "name", "letters, digits"),
        ({"name": "SmolLM2-135M-Instruct"}, "name", "packaged model"),
        ({"device": "tpu"}, "device", "is not a valid choice"),
        ({"epochs": 1.5}, "epochs", "valid integer"),
        ({"learning_rate": "fast"}, "learning_rate", "valid number"),
        ({"surprise": 1}, "surprise", "unknown field"),
    ],
)
def test_it_refuses_out_of_bounds_input_naming_the_limit(staff_client, training_settings, fields, field, message):
    response = staff_client.post(RUNS, {**FAST, **fields}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field and message in error["message"]
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_a_taken_name_or_a_full_queue_is_a_conflict(staff_client, training_settings):
    training_settings.TRAINING_MAX_ACTIVE_RUNS = 2
    (training_settings.MODELS_DIR / "exists").mkdir()
    assert staff_client.post(RUNS, {**FAST, "name": "exists"}, format="json").status_code == 409
    assert staff_client.post(RUNS, {**FAST, "name": "one"}, format="json").status_code == 202
    taken = staff_client.post(RUNS, {**FAST, "name": "one"}, format="json")
    assert taken.status_code == 409 and "already queued or running" in taken.json()["error"]["message"]
    assert staff_client.post(RUNS, {**FAST, "name": "two"}, format="json").status_code == 202
    full = staff_client.post(RUNS, {**FAST, "name": "three"}, format="json")
    assert full.status_code == 409 and "TRAINING_MAX_ACTIVE_RUNS" in full.json()["error"]["message"]


@pytest.mark.django_db
def test_runs_whose_worker_died_are_marked_failed_when_read(alice_client, training_settings):
    host = socket.gethostname()
    now = timezone.now()
    dead_pid = TrainingRun.objects.create(
        name="a", base_model="tiny-base", status="running", worker=f"{host}:999999999", heartbeat_at=now
    )
    silent = TrainingRun.objects.create(
        name="b",
        base_model="tiny-base",
        status="running",
        worker="elsewhere:1",
        heartbeat_at=now - timezone.timedelta(hours=1),
    )
    alive = TrainingRun.objects.create(
        name="c", base_model="tiny-base", status="running", worker="elsewhere:2", heartbeat_at=now
    )
    body = alice_client.get(RUNS).json()
    status = {run["name"]: (run["status"], run["error"]) for run in body["results"]}
    assert status["a"][0] == "failed" and "process" in status["a"][1] and "ended" in status["a"][1]
    assert status["b"][0] == "failed" and "stopped sending heartbeats" in status["b"][1]
    assert status["c"] == ("running", "")
    assert {dead_pid.pk, silent.pk, alive.pk} == {r["id"] for r in body["results"]}


@pytest.mark.django_db
def test_a_restarted_process_reaps_runs_held_under_its_own_pid(training_settings):
    mine = TrainingRun.objects.create(
        name="a", base_model="tiny-base", status="running", worker=services.worker_id(), heartbeat_at=timezone.now()
    )
    assert services.runs_reap() == 0  # a live process's own run is not touched by ordinary reads
    assert services.runs_reap(startup=True) == 1
    mine.refresh_from_db()
    assert mine.status == "failed" and "restarted" in mine.error


@pytest.mark.django_db
def test_the_dataset_catalogue_lists_shipped_data_and_feedback(alice_client, training_settings):
    rows = {row["name"]: row for row in alice_client.get("/api/v1/training/datasets").json()["results"]}
    assert rows["dialogue"]["kind"] == "chat" and rows["dialogue"]["available"]
    assert rows["knowledge"]["kind"] == "text"
    assert rows["feedback"]["origin"] == "feedback"


@pytest.mark.django_db
def test_feedback_with_nothing_rated_yet_is_refused_with_the_reason(staff_client, training_settings):
    response = staff_client.post(RUNS, {**FAST, "datasets": ["feedback"]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("dataset 'feedback' is unavailable: ")


@pytest.mark.django_db(transaction=True)  # the heartbeat thread writes through its own connection
def test_metrics_rows_are_recorded_per_epoch_in_the_database(training_settings, staff):
    run = services.run_create(user=staff, source="cli", claim=True, epochs=2, **{**FAST, "max_steps": None})
    run = services.run_execute(run)
    assert run.status == "succeeded"
    assert list(EpochMetric.objects.filter(run=run).values_list("epoch", flat=True)) == [1, 2]
    assert run.heartbeat_at is not None and run.finished_at >= run.started_at


@pytest.mark.django_db(transaction=True)
def test_a_starting_server_fails_the_runs_of_dead_workers_and_leaves_the_queue_to_the_workers(training_settings):
    from training.apps import _recover_at_start

    interrupted = TrainingRun.objects.create(
        name="was-running",
        base_model="tiny-base",
        status="running",
        worker=f"{socket.gethostname()}:999999999",
        heartbeat_at=timezone.now(),
    )
    queued = services.run_start(name="waiting", **{**FAST, "max_steps": 1})
    _recover_at_start()  # what TrainingConfig.ready() starts in a server process
    interrupted.refresh_from_db()
    queued.refresh_from_db()
    assert interrupted.status == "failed" and "ended while the run was running" in interrupted.error
    assert queued.status == "queued"
    run_jobs("training")  # a job worker takes it
    queued.refresh_from_db()
    assert queued.status == "succeeded", queued.error
