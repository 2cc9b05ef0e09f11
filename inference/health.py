"""Readiness of the inference side, reported by /readyz."""

from __future__ import annotations

from django.conf import settings

from llmsite.model_store import ModelNotFound, resolve_llm_folder


def provider_check() -> tuple[bool, str]:
    """Whether the configured provider can serve: for the local provider, its model folder is prepared."""
    if settings.LLM_PROVIDER != "hf":
        return False, f"provider {settings.LLM_PROVIDER!r} is not available in this build"
    try:
        folder = resolve_llm_folder(settings.LLM_MODEL, settings.MODELS_DIR)
    except ModelNotFound as exc:
        return False, str(exc)
    return True, f"hf:{settings.LLM_MODEL} ({folder})"
