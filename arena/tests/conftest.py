"""Arena fixtures: two different tiny models (tiny-a, tiny-b) served in this process, and battles made directly."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from inference import registry
from inference.engine import get_engine
from llmsite.testing import build_tiny_model


def build_tiny_models(root: Path, names: tuple[str, ...] = ("tiny-a", "tiny-b")) -> Path:
    """A MODELS_DIR with one different tiny model per name (SmolLM2's real tokenizer, random weights)."""
    source = settings.BASE_DIR / "data" / "models" / "SmolLM2-135M-Instruct"
    try:
        for seed, name in enumerate(names, start=1):
            build_tiny_model(root / name, source=source, seed=seed)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return root


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    return build_tiny_models(tmp_path_factory.mktemp("arena-models"))


@pytest.fixture
def arena_settings(settings, tiny_models_dir):
    """tiny-a (the default) and tiny-b, in this process; no remote provider configured."""
    settings.MODELS_DIR = tiny_models_dir
    settings.LLM_PROVIDER = "hf"
    settings.LLM_MODEL = "tiny-a"
    settings.DEVICE = "cpu"
    settings.LLM_RUNNER = "inline"
    settings.LLM_FALLBACKS = {}
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    settings.OPENAI_API_KEY = ""
    settings.ANTHROPIC_API_KEY = ""
    registry._model_lists.clear()
    get_engine().reset()
    yield settings
    get_engine().reset()
    registry._model_lists.clear()


@pytest.fixture
def make_battle():
    """A finished battle row (answers written), optionally voted."""
    from django.utils import timezone

    from arena.models import Battle

    def make(user, model_a="tiny-a", model_b="tiny-b", vote="", **fields):
        values = {
            "prompt": "Say hi",
            "answer_a": f"answer of {model_a}",
            "answer_b": f"answer of {model_b}",
            "finish_reason_a": "stop",
            "finish_reason_b": "length",
            "finished": timezone.now(),
            "vote": vote,
            "voted": timezone.now() if vote else None,
            **fields,
        }
        return Battle.objects.create(user=user, model_a=model_a, model_b=model_b, **values)

    return make
