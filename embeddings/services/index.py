"""The process-wide embedding store (encoder + FAISS index) and keeping its index in step with the database.

Built lazily from settings on first use (or at server start, see apps.py), like Channels' layer
manager: `get_store()` builds it, `set_store()` swaps one in for tests, and changing an embedding
setting resets it. Loading verifies the saved index; a missing, corrupt or mismatched one is
rebuilt from the database with a warning, and a loaded one is reconciled with the database
(vectors added or dropped), so the index never answers with documents that are not there or
misses ones that are.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from embeddings import selectors
from embeddings.models import Document
from embeddings.services.validation import MAX_TOP_K
from embeddings.store import EmbeddingStore, Encoder, IndexMissing, StoreError
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError, ServiceUnavailable
from llmsite.model_store import ModelNotFound, resolve_encoder_folder

logger = logging.getLogger(__name__)

# Rows encoded per step while rebuilding or reconciling: bounds memory, feeds the progress bar.
REBUILD_BATCH = 256


# --- the process-wide store ------------------------------------------------------------------
_encoders: dict[tuple[str, str | None], Encoder] = {}
_encoders_lock = threading.Lock()
_store: EmbeddingStore | None = None
_store_lock = threading.Lock()
_status: dict[str, Any] = {"state": "not loaded"}


def _device() -> str | None:
    device = getattr(settings, "DEVICE", "auto")
    return None if device == "auto" else device  # None: sentence-transformers picks the best one


def get_encoder(name: str | None = None) -> Encoder:
    """The encoder for an embedding model name or folder, loaded once per process and shared."""
    name = name or settings.EMBEDDING_MODEL
    folder = resolve_encoder_folder(name)
    key = (str(folder), _device())
    with _encoders_lock:
        if key not in _encoders:
            _encoders[key] = Encoder(folder, name=name, device=_device())
        return _encoders[key]


def build_store(encoder: Encoder | None = None) -> EmbeddingStore:
    """An empty store configured from settings (nothing loaded from disk yet)."""
    encoder = encoder or get_encoder()
    return EmbeddingStore.from_encoder(
        encoder,
        index_type=settings.EMBEDDINGS_INDEX_TYPE,
        hnsw_m=settings.EMBEDDINGS_HNSW_M,
        hnsw_ef_construction=settings.EMBEDDINGS_HNSW_EF_CONSTRUCTION,
        hnsw_ef_search=settings.EMBEDDINGS_HNSW_EF_SEARCH,
        faiss_threads=settings.EMBEDDINGS_FAISS_THREADS,
        folder=settings.EMBEDDINGS_DIR,
    )


def get_store() -> EmbeddingStore:
    """The process-wide store, loaded (or rebuilt) on first use; ServiceUnavailable if the encoder cannot load."""
    global _store
    store = _store
    if store is not None:
        return store
    with _store_lock:
        if _store is None:
            _status.update(state="loading", detail="loading the encoder and the index")
            try:
                store = build_store()
                index_load(store=store)
            except (ModelNotFound, OSError, StoreError) as exc:
                _status.update(state="failed", detail=str(exc))
                raise ServiceUnavailable(f"the embedding index is unavailable: {exc}") from exc
            except BaseException as exc:
                _status.update(state="failed", detail=f"{type(exc).__name__}: {exc}")
                raise
            _store = store
        return _store


def set_store(store: EmbeddingStore | None) -> None:
    """Use this store from now on (tests); None forgets the current one so the next call rebuilds it."""
    global _store
    with _store_lock:
        _store = store
        if store is None:
            _status.clear()
            _status["state"] = "not loaded"
        else:
            _status.update(state="ready", origin="set", detail="")


def reset_store() -> None:
    set_store(None)


def store_status() -> dict[str, Any]:
    """What /readyz reports: state (not loaded, loading, ready, failed), origin, detail."""
    status = dict(_status)
    if _store is not None:
        status.update(vectors=len(_store), index_type=_store.index_type, model=_store.model_name)
    return status


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "EMBEDDING_MODEL" or (setting.startswith("EMBEDDINGS_") and setting not in _REQUEST_LIMITS):
        reset_store()


_REQUEST_LIMITS = {
    "EMBEDDINGS_MAX_BATCH",
    "EMBEDDINGS_MAX_TEXT_CHARS",
    "EMBEDDINGS_MAX_METADATA_BYTES",
    "EMBEDDINGS_CHUNK_CHARS",
    "EMBEDDINGS_CHUNK_OVERLAP",
    "EMBEDDINGS_AUTOSAVE",
    "EMBEDDINGS_LOAD_AT_START",
}


# --- index persistence -------------------------------------------------------------------------
def _encode_rows(
    store: EmbeddingStore, rows: Iterable[tuple[int, str]], progress: Callable[[int], None] | None = None
) -> tuple[list[int], np.ndarray]:
    ids: list[int] = []
    parts: list[np.ndarray] = []
    batch: list[tuple[int, str]] = []

    def flush() -> None:
        ids.extend(doc_id for doc_id, _ in batch)
        parts.append(store.encode([text for _, text in batch]))
        if progress:
            progress(len(batch))
        batch.clear()

    for row in rows:
        batch.append(row)
        if len(batch) >= REBUILD_BATCH:
            flush()
    if batch:
        flush()
    vectors = np.concatenate(parts) if parts else np.zeros((0, store.dim), dtype=np.float32)
    return ids, vectors


def index_rebuild(
    *, store: EmbeddingStore | None = None, save: bool = True, progress: Callable[[int], None] | None = None
) -> int:
    """Re-encode every indexed document from the database into a fresh index; returns the vector count."""
    store = get_store() if store is None else store
    rows = selectors.indexed_documents().order_by("id").values_list("id", "text").iterator(chunk_size=1000)
    ids, vectors = _encode_rows(store, rows, progress)
    store.replace_all(ids, vectors)
    if save:
        index_save(store=store)
    _status.update(origin="rebuilt", rebuilt_at=time.time())
    return len(ids)


def index_rebuild_count() -> int:
    """How many documents a rebuild encodes (for progress bars)."""
    return selectors.indexed_documents().count()


class IndexSaveFailed(ApplicationError):
    """The index could not be written (a full disk: 507); the previous saved index is untouched."""

    status = 503
    code = ErrorCode.UNAVAILABLE


def _save_failed(exc: OSError, folder: Any) -> IndexSaveFailed:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return IndexSaveFailed(
            f"could not save the embedding index: no space left on the device holding {folder}; "
            "the previous saved index is unchanged",
            status=507,
        )
    return IndexSaveFailed(
        f"could not save the embedding index in {folder}: {exc.strerror or exc}; the previous saved index is unchanged"
    )


def index_save(*, store: EmbeddingStore | None = None) -> dict[str, Any]:
    """Write the index and its manifest to EMBEDDINGS_DIR atomically; returns the manifest.

    IndexSaveFailed (507 on a full disk, else 503) when the folder cannot take it; the previous
    saved index then stays as it was, and the index in memory keeps serving.
    """
    store = get_store() if store is None else store
    try:
        manifest = store.save()
    except OSError as exc:
        error = _save_failed(exc, store.folder)
        _status.update(save_error=error.message)
        raise error from exc
    _status.update(saved_at=manifest["saved_at"], save_error="")
    return manifest


def _save_or_log(store: EmbeddingStore) -> None:
    try:
        index_save(store=store)
    except IndexSaveFailed as exc:
        # The index in memory is right and the database holds the text: a later save, or the next
        # start, writes the file. /readyz shows the failure meanwhile.
        logger.error("%s", exc.message)


def index_autosave(store: EmbeddingStore) -> None:
    """Save after a change when EMBEDDINGS_AUTOSAVE is on; a failed save is logged, never raised."""
    if settings.EMBEDDINGS_AUTOSAVE:
        _save_or_log(store)


def index_reconcile(*, store: EmbeddingStore | None = None) -> tuple[int, int]:
    """Make the index hold exactly the database's indexed documents; returns (added, removed)."""
    store = get_store() if store is None else store
    in_db = set(selectors.indexed_documents().values_list("id", flat=True))
    in_index = store.ids()
    extra = in_index - in_db
    missing = sorted(in_db - in_index)
    if extra:
        store.remove(extra)
    if missing:
        rows = Document.objects.filter(id__in=missing).order_by("id").values_list("id", "text")
        ids, vectors = _encode_rows(store, rows.iterator(chunk_size=1000))
        store.add(ids, vectors)
    return len(missing), len(extra)


def index_load(*, store: EmbeddingStore | None = None) -> dict[str, Any]:
    """Load the saved index, verified and reconciled with the database; rebuild it when it cannot be used.

    Returns {"origin": "loaded" | "rebuilt", "vectors": n, "reason"?: why it was rebuilt, ...}.
    """
    store = get_store() if store is None else store
    try:
        manifest = store.load()
    except StoreError as exc:
        # A first start has no index yet: that is expected, not worth a warning.
        level = logging.INFO if isinstance(exc, IndexMissing) else logging.WARNING
        logger.log(level, "embedding index at %s not used (%s); rebuilding it from the database", store.folder, exc)
        count = index_rebuild(store=store, save=False)
        _save_or_log(store)  # a disk that cannot take it must not keep the rebuilt index from serving
        _status.update(state="ready", origin="rebuilt", detail=str(exc), loaded_at=time.time())
        return {"origin": "rebuilt", "reason": str(exc), "vectors": count}
    added, removed = index_reconcile(store=store)
    if added or removed:
        logger.warning(
            "embedding index at %s was behind the database: %d vectors added, %d removed", store.folder, added, removed
        )
        _save_or_log(store)
    _status.update(state="ready", origin="loaded", detail="", loaded_at=time.time())
    return {"origin": "loaded", "vectors": len(store), "added": added, "removed": removed, "manifest": manifest}


def stats(*, user: Any) -> dict[str, Any]:
    """Model, dimension, index type and counts (site-wide, and the user's own under `yours`)."""
    store = get_store()
    status = store_status()
    counts = selectors.document_counts(user=user)
    return {
        "model": store.model_name,
        "dim": store.dim,
        "index_type": store.index_type,
        "documents": counts["documents"],
        "vectors": len(store),
        "collections": counts["collections"],
        "visible_collections": counts["visible_collections"],
        "yours": counts["yours"],
        "index": {
            "origin": status.get("origin"),
            "loaded_at": status.get("loaded_at"),
            "saved_at": status.get("saved_at"),
            "autosave": settings.EMBEDDINGS_AUTOSAVE,
        },
        "limits": {
            "max_batch": settings.EMBEDDINGS_MAX_BATCH,
            "max_text_chars": settings.EMBEDDINGS_MAX_TEXT_CHARS,
            "max_metadata_bytes": settings.EMBEDDINGS_MAX_METADATA_BYTES,
            "chunk_chars": settings.EMBEDDINGS_CHUNK_CHARS,
            "chunk_overlap": settings.EMBEDDINGS_CHUNK_OVERLAP,
            "max_top_k": MAX_TOP_K,
        },
    }
