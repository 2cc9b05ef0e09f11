"""Which providers exist, whether each can serve, and how to build one from a spec.

The one place that turns settings (MODELS_DIR, API keys) into provider constructor
arguments; providers themselves never read settings.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from inference.providers.base import ModelInfo, Provider, ProviderUnavailable
from llmsite.model_store import PACKAGED_LLMS, ModelNotFound, is_prepared, resolve_llm_folder

PROVIDER_NAMES = ("hf", "anthropic", "openai")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class ProviderSpec:
    """What to serve: provider, model, device, default parameters; `key` says where it came from."""

    provider: str
    model: str
    device: str = "auto"
    parameters: tuple[tuple[str, Any], ...] = ()
    key: tuple[Any, ...] = field(default=(), compare=False)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.parameters)

    def label(self) -> str:
        return f"{self.provider}:{self.model} ({self.device})"


def spec_from_settings() -> ProviderSpec:
    provider, model, device = settings.LLM_PROVIDER, settings.LLM_MODEL, settings.DEVICE
    return ProviderSpec(provider, model, device, (), ("settings", provider, model, device))


def _remote_reason(name: str) -> str:
    key = {"anthropic": settings.ANTHROPIC_API_KEY, "openai": settings.OPENAI_API_KEY}[name]
    if not key:
        return f"not configured: set {name.upper()}_API_KEY (and the provider module arrives with issue 6)"
    return "not built yet: the remote providers arrive with issue 6"


def check_spec(spec: ProviderSpec) -> None:
    """Cheap checks (no weights loaded): raises ProviderUnavailable saying what to fix."""
    if spec.provider not in PROVIDER_NAMES:
        raise ProviderUnavailable(f"unknown provider {spec.provider!r}; known: {', '.join(PROVIDER_NAMES)}")
    if spec.provider != "hf":
        raise ProviderUnavailable(f"provider {spec.provider!r} is {_remote_reason(spec.provider)}")
    if spec.device not in DEVICES:
        raise ProviderUnavailable(f"unknown device {spec.device!r}; use one of {', '.join(DEVICES)}")
    try:
        resolve_llm_folder(spec.model, settings.MODELS_DIR)
    except ModelNotFound as exc:
        raise ProviderUnavailable(str(exc)) from exc


def check_device(device: str) -> str:
    """The concrete device `device` resolves to here; raises ProviderUnavailable when it is absent."""
    from inference.providers.hf import resolve_device

    return resolve_device(device)


def build_provider(spec: ProviderSpec) -> Provider:
    """A provider for `spec`, not loaded yet."""
    check_spec(spec)
    from inference.providers.hf import HFProvider

    folder = resolve_llm_folder(spec.model, settings.MODELS_DIR)
    return HFProvider(spec.model, folder, device=spec.device, dtype=settings.LLM_DTYPE, workers=settings.LLM_WORKERS)


def local_models() -> list[ModelInfo]:
    """Model folders under MODELS_DIR and the packaged models (prepared or not)."""
    found: dict[str, ModelInfo] = {}
    models_dir = settings.MODELS_DIR
    if models_dir.is_dir():
        for folder in sorted(models_dir.iterdir()):
            if not folder.name.startswith(".") and (folder / "config.json").is_file():
                found[folder.name] = ModelInfo(folder.name, "ready")
    for name in PACKAGED_LLMS:
        if name not in found or not is_prepared(models_dir / name):
            found[name] = ModelInfo(name, "ready" if is_prepared(models_dir / name) else "run manage.py prepare_models")
    return list(found.values())


def availability(name: str) -> tuple[bool, str, list[ModelInfo]]:
    """(available, reason when not, models) for one provider name."""
    if name == "hf":
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            return False, "torch and transformers are not installed", []
        models = local_models()
        if not any(m.detail == "ready" for m in models):
            return False, f"no model folder under {settings.MODELS_DIR}; run manage.py prepare_models", models
        return True, "", models
    if name in ("anthropic", "openai"):
        model = {"anthropic": settings.ANTHROPIC_MODEL, "openai": settings.OPENAI_MODEL}[name]
        return False, _remote_reason(name), [ModelInfo(model, "remote")]
    return False, "unknown provider", []
