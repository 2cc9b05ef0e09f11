"""Evaluation fixtures: two tiny Llamas (real SmolLM2 tokenizer) in a private MODELS_DIR, served inline on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches

from llmsite.testing import build_tiny_model


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A folder with `tiny-a` and `tiny-b`, two different tiny models (built once)."""
    root = tmp_path_factory.mktemp("evaluation-models")
    source = django_settings.BASE_DIR / "data" / "models" / "SmolLM2-135M-Instruct"
    try:
        build_tiny_model(root / "tiny-a", source=source, seed=1, hidden_size=32)
        build_tiny_model(root / "tiny-b", source=source, seed=2, hidden_size=32)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return root


@pytest.fixture(scope="session", autouse=True)
def _modest_torch():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; a tiny model gains nothing from more
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def models_dir(tmp_path, tiny_models) -> Path:
    """A MODELS_DIR of this test's own (training runs write into it), holding the two tiny models."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("tiny-a", "tiny-b"):
        (folder / name).symlink_to(tiny_models / name, target_is_directory=True)
    return folder


@pytest.fixture
def eval_settings(settings, models_dir, tmp_path):
    """The site serves `tiny-a` inline on the CPU; `tiny-b` answers by name; nothing remote is configured."""
    settings.MODELS_DIR = models_dir
    settings.LLM_PROVIDER, settings.LLM_MODEL, settings.DEVICE = "hf", "tiny-a", "cpu"
    settings.LLM_RUNNER = "inline"
    settings.OPENAI_API_KEY = settings.ANTHROPIC_API_KEY = ""
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    settings.EVALUATION_DEVICE = settings.TRAINING_DEVICE = "cpu"
    settings.EVALUATION_JUDGE_MODEL = ""
    settings.EVALUATION_MAX_NEW_TOKENS = 8
    settings.EVALUATION_HEARTBEAT_SECONDS = settings.TRAINING_HEARTBEAT_SECONDS = 0.05
    settings.TRAINING_BASE_MODEL = "tiny-a"
    settings.TRAINING_DATASETS_DIR = tmp_path / "datasets"
    settings.LLM_EXPORT_AFTER_TRAINING = False
    return settings


@pytest.fixture(autouse=True)
def _clean_engine():
    from inference.engine import get_engine

    get_engine().reset()
    caches["responses"].clear()
    yield
    get_engine().reset()
    caches["responses"].clear()
