"""Training fixtures: a tiny Llama (real SmolLM2 tokenizer) as the base model, private folders, quick heartbeats."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings

from jobs.testing import worker_thread
from llmsite.testing import build_tiny_model
from training.trainer import Example, TrainingConfig

TINY = "tiny-base"


def build_tiny(folder: Path, seed: int = 1) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer and chat template, saved like a prepared model."""
    source = django_settings.BASE_DIR / "data" / "models" / "SmolLM2-135M-Instruct"
    try:
        return build_tiny_model(folder, source=source, seed=seed, hidden_size=32)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session", autouse=True)
def _modest_torch():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; a tiny model gains nothing from more
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """The tiny base model's folder (built once; tests copy it into their own MODELS_DIR)."""
    return build_tiny(tmp_path_factory.mktemp("tiny") / TINY)


@pytest.fixture
def models_dir(tmp_path, tiny_base) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / TINY).symlink_to(tiny_base, target_is_directory=True)
    return folder


@pytest.fixture
def datasets_dir(tmp_path) -> Path:
    folder = tmp_path / "datasets"
    folder.mkdir()
    return folder


@pytest.fixture
def training_settings(settings, models_dir, datasets_dir):
    """The site trains the tiny model on the CPU, with private folders and a quick heartbeat."""
    settings.MODELS_DIR = models_dir
    settings.TRAINING_DATASETS_DIR = datasets_dir
    settings.TRAINING_BASE_MODEL = TINY
    settings.TRAINING_DEVICE = "cpu"
    settings.TRAINING_HEARTBEAT_SECONDS = 0.05
    settings.LLM_EXPORT_AFTER_TRAINING = False  # test_openvino_export.py turns it on
    settings.EVALUATION_AFTER_TRAINING = False  # evaluation/tests/test_jobs.py tests the evaluation after a run
    return settings


@pytest.fixture
def job_worker(training_settings):
    """A job worker in a thread of the test process, taking jobs while the test runs (transaction=True tests)."""
    with worker_thread() as worker:
        yield worker


@pytest.fixture(autouse=True)
def _clean_engine():
    from inference.engine import get_engine

    get_engine().reset()
    yield
    get_engine().reset()


# Small and fast: short sequences, a handful of steps, a high learning rate so a few steps show.
FAST = {"max_length": 64, "batch_size": 4, "learning_rate": 5e-3, "warmup_ratio": 0.0, "max_steps": 3}


def conversation(question: str, answer: str) -> Example:
    return Example("chat", messages=(("user", question), ("assistant", answer)), source="test")


@pytest.fixture
def small_examples() -> list[Example]:
    pairs = [
        ("What is llmsite?", "A self-hosted LLM serving site."),
        ("Which model is the default?", "SmolLM2-135M-Instruct."),
        ("How do I start it?", "Run make run."),
        ("How do I test it?", "Run make test."),
        ("Where are models kept?", "Under data/models."),
        ("Does it download weights?", "No, never."),
        ("Who may start training?", "Staff users."),
        ("How do I cancel a run?", "POST its cancel URL."),
    ]
    return [conversation(q, a) for q, a in pairs]


def tiny_config(base: Path, output: Path, **overrides) -> TrainingConfig:
    values = {"epochs": 2, "eval_fraction": 0.25, "seed": 0, "device": "cpu", **FAST, **overrides}
    return TrainingConfig(base_folder=base, output_folder=output, **values)
