"""Inference fixtures: tiny Llama models built here (real SmolLM2 tokenizer), a clean engine and cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches

from inference.engine import get_engine
from llmsite.testing import build_tiny_model

PASSWORD = "correct-horse-battery"


def _build_tiny(folder: Path, seed: int) -> Path:
    source = settings.BASE_DIR / "data" / "models" / "SmolLM2-135M-Instruct"
    try:
        return build_tiny_model(folder, source=source, seed=seed)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A MODELS_DIR with two different tiny models, `tiny-a` and `tiny-b`."""
    root = tmp_path_factory.mktemp("models")
    _build_tiny(root / "tiny-a", seed=1)
    _build_tiny(root / "tiny-b", seed=2)
    return root


@pytest.fixture(scope="session")
def tiny_provider(tiny_models_dir):
    """`tiny-a` loaded through the real HF provider, once per session."""
    from inference.providers.hf import HFProvider

    provider = HFProvider("tiny-a", tiny_models_dir / "tiny-a", device="cpu")
    provider.load()
    yield provider
    provider.close()


@pytest.fixture(scope="session")
def tiny_b_provider(tiny_models_dir):
    """`tiny-b` loaded on its own, for what it answers alone."""
    from inference.providers.hf import HFProvider

    provider = HFProvider("tiny-b", tiny_models_dir / "tiny-b", device="cpu")
    provider.load()
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def batched(tiny_models_dir):
    """`tiny-a` with continuous batching, loaded once per test module."""
    from inference.providers.hf import HFProvider

    provider = HFProvider("tiny-a", tiny_models_dir / "tiny-a", device="cpu", batching=True)
    provider.load()
    assert provider.scheduler is not None, provider.batching_off_reason
    yield provider
    provider.close()


@pytest.fixture(scope="session")
def smollm2_exported() -> Path:
    """SmolLM2's folder, with its OpenVINO fp32 export (`make test` runs prepare_models, which makes both)."""
    from inference.providers.openvino import is_exported
    from llmsite.model_store import ModelNotFound, resolve_llm_folder

    try:
        found = resolve_llm_folder("SmolLM2-135M-Instruct", settings.MODELS_DIR)
    except ModelNotFound as exc:
        pytest.skip(str(exc))
    if not is_exported(found, "fp32"):
        pytest.fail("SmolLM2-135M-Instruct has no OpenVINO export: make test runs prepare_models, which makes it")
    return found


@pytest.fixture(autouse=True)
def clean_engine_and_cache():
    get_engine().reset()
    caches["responses"].clear()
    caches["default"].clear()  # rate-limit counters
    yield
    get_engine().reset()
    caches["responses"].clear()


@pytest.fixture
def tiny_settings(settings, tiny_models_dir):
    """Configure the site to serve `tiny-a` from the tiny MODELS_DIR on the CPU (loaded lazily)."""
    settings.MODELS_DIR = tiny_models_dir
    settings.LLM_PROVIDER = "hf"
    settings.LLM_MODEL = "tiny-a"
    settings.DEVICE = "cpu"
    return settings


@pytest.fixture
def serving(tiny_provider):
    """The engine pinned to the session's tiny provider."""
    get_engine().set(tiny_provider)
    return tiny_provider


@pytest.fixture
def calls(serving, monkeypatch):
    """Count the provider's generate calls."""
    seen: list = []
    original = serving.generate

    def counted(request):
        seen.append(request)
        return original(request)

    monkeypatch.setattr(serving, "generate", counted)
    return seen


@pytest.fixture
def seen(serving, monkeypatch):
    """The requests the provider's generate() receives."""
    requests = []
    original = serving.generate

    def recording(request):
        requests.append(request)
        return original(request)

    monkeypatch.setattr(serving, "generate", recording)
    return requests


@pytest.fixture
def application():
    """The project's ASGI application, for Channels' communicators."""
    from llmsite.asgi import application

    return application


@pytest.fixture
def token(alice):
    """A JWT access token of alice."""
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(alice))


@pytest.fixture
def upstream():
    """A fake remote API (Anthropic or OpenAI wire format) on a free port; see fake_upstream.py."""
    from inference.tests.fake_upstream import FakeUpstream

    with FakeUpstream() as server:
        yield server


@pytest.fixture
def gpt(upstream):
    """An OpenAIProvider, loaded, talking to the stand-in."""
    from inference.providers.openai import OpenAIProvider
    from inference.tests.fake_upstream import FAST, OPENAI_KEY

    provider = OpenAIProvider("gpt-test", api_key=OPENAI_KEY, base_url=f"{upstream.url}/v1", http=FAST)
    provider.load()
    yield provider
    provider.close()


@pytest.fixture
def claude(upstream):
    """An AnthropicProvider, loaded, talking to the stand-in."""
    from inference.providers.anthropic import AnthropicProvider
    from inference.tests.fake_upstream import ANTHROPIC_KEY, FAST

    provider = AnthropicProvider("claude-test", api_key=ANTHROPIC_KEY, base_url=upstream.url, http=FAST)
    provider.load()
    yield provider
    provider.close()


@pytest.fixture
def own_embedding_index(tmp_path, settings):
    """An empty embedding index of the test's own (grounding tests), dropped with the cache afterwards."""
    from embeddings import services as embeddings

    settings.EMBEDDINGS_DIR = tmp_path / "embeddings"
    yield
    embeddings.reset_store()
    caches["default"].clear()
