"""Readiness of the embedding side, reported by /readyz."""

from __future__ import annotations

from django.conf import settings

from llmsite.model_store import ModelNotFound, resolve_encoder_folder


def index_check() -> tuple[bool, str]:
    """Whether the configured encoder's files are present (the index is built from it)."""
    try:
        folder = resolve_encoder_folder(settings.EMBEDDING_MODEL)
    except ModelNotFound as exc:
        return False, str(exc)
    return True, f"{settings.EMBEDDING_MODEL} ({folder})"
