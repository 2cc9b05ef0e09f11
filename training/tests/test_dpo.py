"""DPO runs on the tiny model: recorded like SFT runs (epochs, progress, checkpoint), cancelled, refused, and LoRA."""

from __future__ import annotations

import io
import json
import math

import pytest
from django.core.management import CommandError, call_command

from training import services
from training.models import EpochMetric, TrainingRun
from training.trainer import StepDone

pytestmark = pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection
RUNS = "/api/v1/training/runs"
# Short pairs, short sequences: the tiny model trains a step in a moment.
TOPICS = [
    ("Is llmsite offline?", "Yes, offline.", "No, online."),
    ("Default model?", "SmolLM2.", "GPT-4."),
    ("Start it?", "make run.", "You cannot."),
    ("Test it?", "make test.", "No tests."),
    ("Who trains?", "Staff.", "Anyone."),
    ("Cancel a run?", "POST cancel.", "Never."),
    ("Models where?", "data/models.", "Browser."),
    ("Cache header?", "X-Cache.", "None."),
]
DPO_FAST = {"max_length": 48, "batch_size": 2, "learning_rate": 5e-3, "warmup_ratio": 0.0, "eval_fraction": 0.25}


@pytest.fixture
def pairs_dataset(training_settings):
    """`pairs`, a file of eight preference pairs in TRAINING_DATASETS_DIR."""
    path = training_settings.TRAINING_DATASETS_DIR / "pairs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": q}], "chosen": good, "rejected": bad}) + "\n"
            for q, good, bad in TOPICS
        )
    )
    return path


def load_model(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder)


def test_a_dpo_run_records_epochs_progress_and_a_servable_checkpoint(training_settings, pairs_dataset):
    run = services.run_create(
        source="cli", claim=True, method="dpo", datasets=["pairs"], name="prefers", epochs=2, beta=0.2, **DPO_FAST
    )
    steps: list[tuple[int, int]] = []
    run = services.run_execute(
        run, on_event=lambda e: steps.append((e.step, e.total_steps)) if isinstance(e, StepDone) else None
    )
    assert run.status == "succeeded", run.error
    assert (run.method, run.beta, run.lora) == ("dpo", 0.2, False)
    # 6 training pairs, 2 per step: 3 steps an epoch, progress recorded as it went.
    assert steps == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    assert (run.step, run.total_steps, run.train_examples, run.eval_examples) == (6, 6, 6, 2)
    # Before training the policy is its reference: the DPO loss is log 2.
    assert run.eval_loss_before == pytest.approx(math.log(2), abs=1e-4)
    assert run.eval_loss_after < run.eval_loss_before
    assert run.perplexity_before is None  # exp(a DPO loss) means nothing
    metrics = list(EpochMetric.objects.filter(run=run).order_by("epoch"))
    assert [m.epoch for m in metrics] == [1, 2] and [m.step for m in metrics] == [3, 6]
    assert metrics[-1].eval_loss == pytest.approx(run.eval_loss_after)
    assert metrics[-1].extra["reward_margin"] > 0 and 0 <= metrics[-1].extra["preference_accuracy"] <= 1
    assert run.final_metrics["reward_accuracy_after"] > run.final_metrics["reward_accuracy_before"]

    folder = training_settings.MODELS_DIR / "prefers"
    manifest = json.loads((folder / "llmsite-training.json").read_text())
    assert manifest["run"] == run.pk and manifest["method"] == "dpo" and manifest["dpo"]["beta"] == 0.2
    assert not any(p.name.startswith(".prefers.partial-") for p in folder.parent.iterdir())
    assert load_model(folder).config.model_type == "llama"


def test_a_dpo_run_stops_between_steps_when_cancelled(training_settings, pairs_dataset):
    run = services.run_create(
        source="cli", claim=True, method="dpo", datasets=["pairs"], name="stopped", epochs=5, **DPO_FAST
    )

    def cancel_after_first_step(event):
        if isinstance(event, StepDone):
            services.run_cancel(run_id=run.pk)

    run = services.run_execute(run, on_event=cancel_after_first_step)
    assert run.status == "cancelled" and run.error == "cancelled after 1 steps"
    assert run.step == 1 and run.total_steps == 15
    assert not (training_settings.MODELS_DIR / "stopped").exists()
    assert not any(p.name.startswith(".stopped") for p in training_settings.MODELS_DIR.iterdir())


def test_the_command_trains_dpo_with_lora_and_saves_a_plain_merged_model(training_settings, pairs_dataset):
    out = io.StringIO()
    call_command(
        "train", "--method", "dpo", "--lora", "--dataset", str(pairs_dataset), "--name", "lora-tuned",
        "--max-steps", "1", "--max-length", "48", "--batch-size", "2", "--lr", "5e-3", "--warmup-ratio", "0",
        "--no-progress",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.status == "succeeded" and (run.method, run.lora, run.beta) == ("dpo", True, 0.1)
    assert "(dpo (beta 0.1, LoRA))" in out.getvalue() and "held-out preference accuracy" in out.getvalue()
    folder = training_settings.MODELS_DIR / "lora-tuned"
    names = {p.name for p in folder.iterdir()}
    assert "model.safetensors" in names and "adapter_config.json" not in names  # merged: no adapters to load
    tuned, base = load_model(folder), load_model(training_settings.MODELS_DIR / "tiny-base")
    assert set(tuned.state_dict()) == set(base.state_dict())  # the base model's own weights, no lora_ ones
    changed = [k for k, v in tuned.state_dict().items() if not v.equal(base.state_dict()[k])]
    assert changed and all("proj" in k for k in changed)  # LoRA touched the linear layers only


def test_the_command_refuses_a_method_and_dataset_mismatch(training_settings, pairs_dataset):
    with pytest.raises(CommandError, match="datasets: a dpo run trains on preference datasets"):
        call_command("train", "--method", "dpo", "--dataset", "dialogue", stdout=io.StringIO())
    with pytest.raises(CommandError, match="datasets: dataset 'pairs' holds preference pairs"):
        call_command("train", "--dataset", "pairs", stdout=io.StringIO())
    with pytest.raises(CommandError, match="lora: lora applies to dpo runs only"):
        call_command("train", "--lora", stdout=io.StringIO())
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"method": "dpo", "datasets": ["dialogue"]}, "datasets", "a dpo run trains on preference datasets"),
        ({"method": "dpo", "datasets": ["preferences", "knowledge"]}, "datasets", "'knowledge' is a text dataset"),
        ({"datasets": ["preferences"]}, "datasets", "dataset 'preferences' holds preference pairs"),
        ({"method": "sft", "datasets": ["arena"]}, "datasets", "dataset 'arena' holds preference pairs"),
        ({"method": "dpo", "datasets": ["arena"]}, "datasets", "dataset 'arena' is unavailable"),
        ({"method": "ppo"}, "method", '"ppo" is not a valid choice'),
        ({"beta": 0.5}, "beta", "beta applies to dpo runs only"),
        ({"method": "dpo", "beta": 0}, "beta", "beta must be more than 0"),
        ({"method": "dpo", "beta": 11}, "beta", "at most 10"),
        ({"method": "dpo", "lora": "yes please"}, "lora", "Must be a valid boolean"),
    ],
)
def test_the_api_refuses_mismatched_methods_and_bad_dpo_options(staff_client, training_settings, body, field, message):
    response = staff_client.post(RUNS, body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field and message in error["message"]
    assert not TrainingRun.objects.exists()


def test_the_api_starts_a_dpo_run_and_shows_its_method(staff_client, training_settings):
    response = staff_client.post(
        RUNS, {"method": "dpo", "name": "dpo-1", "lora": True, "max_length": 64}, format="json"
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["method"] == "dpo" and body["datasets"] == ["preferences"]  # the default pairs for dpo
    assert body["hyperparameters"]["beta"] == 0.1 and body["hyperparameters"]["lora"] is True
    listed = staff_client.get(RUNS).json()["results"][0]
    assert listed["method"] == "dpo"
    sft = staff_client.post(RUNS, {"name": "sft-1", "max_length": 64}, format="json").json()
    assert sft["method"] == "sft" and sft["hyperparameters"]["beta"] is None
    datasets = {d["name"]: d for d in staff_client.get("/api/v1/training/datasets").json()["results"]}
    assert datasets["preferences"]["kind"] == "preference" and datasets["dialogue"]["kind"] == "chat"
    assert datasets["arena"]["origin"] == "arena" and datasets["feedback-pairs"]["kind"] == "preference"
