"""Readiness of the embedding side, reported by /readyz."""

from __future__ import annotations

from django.conf import settings

from embeddings.services import store_status
from llmsite.model_store import ModelNotFound, resolve_encoder_folder


def index_check() -> tuple[bool, str]:
    """The index's real state: ready (vectors, type, loaded or rebuilt), loading, failed, or not loaded yet."""
    try:
        folder = resolve_encoder_folder(settings.EMBEDDING_MODEL)
    except ModelNotFound as exc:
        return False, str(exc)
    status = store_status()
    state = status.get("state")
    if state == "failed":
        return False, f"embedding index unavailable: {status.get('detail')}"
    if state == "ready":
        detail = (
            f"{status['model']}: {status['vectors']} vectors, {status['index_type']} index ({status.get('origin')})"
        )
        if status.get("origin") == "rebuilt" and status.get("detail"):
            detail += f"; the saved index was not usable: {status['detail']}"
        if status.get("save_error"):  # still ready: the index in memory serves, the database holds the text
            detail += f"; {status['save_error']}"
        if status.get("sync_error"):  # still ready: it serves what it has, and retries every EMBEDDINGS_SYNC_SECONDS
            detail += f"; {status['sync_error']}"
        return True, detail
    if state == "loading":
        # Usable: requests that need the index wait for the load to finish.
        return True, f"{settings.EMBEDDING_MODEL}: loading the index (requests wait for it)"
    return True, f"{settings.EMBEDDING_MODEL} ({folder}); the index loads at first use"
