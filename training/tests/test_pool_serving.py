"""A fine-tuned checkpoint joins the model pool as soon as its run finishes, and answers by name."""

from __future__ import annotations

import json

import pytest

from inference.providers.base import GenerationRequest, SamplingParams
from inference.providers.hf import HFProvider
from inference.selectors import models_list
from training import services
from training.tests.conftest import FAST, TINY
from training.trainer import Saved

pytestmark = pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection

PROMPT = "What is llmsite?"
SAMPLING = {"temperature": 0, "max_new_tokens": 8}


@pytest.fixture
def pool_settings(training_settings):
    """The tiny base model is the default; every other folder under MODELS_DIR is callable by name."""
    training_settings.LLM_PROVIDER, training_settings.LLM_MODEL, training_settings.DEVICE = "hf", TINY, "cpu"
    training_settings.LLM_RUNNER = "inline"
    training_settings.OPENAI_API_KEY = training_settings.ANTHROPIC_API_KEY = ""
    training_settings.OPENAI_BASE_URL = "https://api.openai.com/v1"  # not configured: nothing remote is asked
    training_settings.TRAINING_MAX_LEARNING_RATE = 0.05
    return training_settings


@pytest.fixture
def one_answer(tmp_path):
    """A dataset that teaches one answer: ten steps at a high rate change what the tiny model says."""
    turns = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": "A site."}]
    path = tmp_path / "one-answer.jsonl"
    path.write_text("\n".join(json.dumps({"messages": turns}) for _ in range(8)) + "\n")
    return str(path)


def alone(folder, name: str) -> str:
    provider = HFProvider(name, folder, device="cpu")
    provider.load()
    try:
        return provider.generate(GenerationRequest(prompt=PROMPT, sampling=SamplingParams(**SAMPLING))).text
    finally:
        provider.close()


def test_a_finished_run_is_listed_at_once_and_answers_by_name(pool_settings, one_answer, alice_client):
    assert "tuned" not in [row["id"] for row in models_list()]

    fields = {**FAST, "datasets": [one_answer], "epochs": 20, "max_steps": 10, "learning_rate": 0.03}
    run = services.run_create(source="cli", claim=True, name="tuned", **fields)
    listed_while_training = []

    def watch(event) -> None:
        if not isinstance(event, Saved):
            listed_while_training.append("tuned" in [row["id"] for row in models_list()])

    run = services.run_execute(run, on_event=watch)
    assert run.status == "succeeded", run.error
    assert listed_while_training and not any(listed_while_training)  # never half-written

    # Listed as soon as the run is recorded: no reload, no restart, no switch of the default.
    row = next(row for row in models_list() if row["id"] == "tuned")
    assert (row["kind"], row["state"], row["default"]) == ("local", "idle", False)
    assert "tuned" in [row["id"] for row in alice_client.get("/api/v1/models").json()["data"]]

    answer = alice_client.post("/api/v1/predict", {"prompt": PROMPT, "model": "tuned", **SAMPLING}, format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    tuned = alone(pool_settings.MODELS_DIR / "tuned", "tuned")
    assert (body["model"], body["text"]) == ("tuned", tuned)
    assert tuned != alone(pool_settings.MODELS_DIR / TINY, TINY)  # the checkpoint answers, not its base
    default = alice_client.post("/api/v1/predict", {"prompt": PROMPT, **SAMPLING}, format="json").json()
    assert default["model"] == TINY  # the default model stays what it was
