"""The process-wide embedding store (encoder + FAISS index) and keeping its index in step with the database.

Built lazily from settings on first use (or at server start, see apps.py), like Channels' layer
manager: `get_store()` builds it, `set_store()` swaps one in for tests, and changing an embedding
setting resets it. Loading verifies the saved index; a missing, corrupt or mismatched one is
rebuilt from the vectors stored in the database with a warning, and a loaded one catches up with
the database's change log (embeddings/services/sync.py), so the index never answers with
documents that are not there or misses ones that are. Servers keep catching up in the
background (`index_follow`), which is how a document added through another worker is found.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from embeddings import selectors
from embeddings.services import sync
from embeddings.services.validation import MAX_TOP_K
from embeddings.store import EmbeddingStore, Encoder, IndexMissing, StoreError
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError, ServiceUnavailable
from llmsite.model_store import ModelNotFound, resolve_encoder_folder
from llmsite.processes import run_logged

logger = logging.getLogger(__name__)

# Rows encoded per step while rebuilding or filling in vectors: bounds memory, feeds the progress bar.
REBUILD_BATCH = sync.ENCODE_BATCH


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
    """What /readyz reports: state (not loaded, loading, ready, failed), origin, detail, the change log's mark."""
    status = dict(_status)
    if _store is not None:
        status.update(
            vectors=len(_store),
            index_type=_store.index_type,
            model=_store.model_name,
            changes_through=_store.cursor.safe_mark(),
        )
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
    "EMBEDDINGS_SYNC_SECONDS",
    "EMBEDDINGS_SEARCH_MODE",
}


# --- index persistence -------------------------------------------------------------------------
def index_rebuild(
    *,
    store: EmbeddingStore | None = None,
    reencode: bool = False,
    save: bool = True,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Build a fresh index from the vectors stored in the database; returns the vector count.

    Rows without a stored vector of this model are encoded first (and stored); with `reencode`
    every row is, and every other process reloads the new vectors. `progress` gets the number of
    rows encoded, batch by batch (`index_rebuild_count` is the total).
    """
    store = get_store() if store is None else store
    sync.vectors_fill(store=store, reencode=reencode, progress=progress)
    count = sync.index_reload(store=store)
    if save:
        index_save(store=store)
    _status.update(origin="rebuilt", rebuilt_at=time.time())
    return count


def index_rebuild_count(*, reencode: bool = False) -> int:
    """How many documents a rebuild encodes (for progress bars): those without a stored vector, or all."""
    if reencode:
        return selectors.indexed_documents().count()
    return sync.vectors_missing(store=get_store()).count()


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
    """Make the index hold exactly the database's indexed documents, compared by id; returns (added, removed).

    Vectors come from the database (rows lacking one are encoded and stored first).
    """
    store = get_store() if store is None else store
    sync.vectors_fill(store=store)
    return sync.index_reconcile_ids(store=store)


def index_sync(*, store: EmbeddingStore | None = None) -> tuple[int, int]:
    """Apply the changes other processes (and this one) logged since the index's cursor; returns (added, removed)."""
    return sync.index_sync(store=get_store() if store is None else store)


def index_load(*, store: EmbeddingStore | None = None) -> dict[str, Any]:
    """Load the saved index, verified, and catch it up from the database; rebuild it when it cannot be used.

    Catching up replays the change log from the snapshot's mark; a snapshot the log cannot cover
    (saved before the log existed, or older than what is left of it) is compared with the
    documents by id instead. Neither encodes, except rows stored before vectors were kept: those
    get the snapshot's vector copied, or are encoded once (`sync.vectors_fill`).
    Returns {"origin": "loaded" | "rebuilt", "vectors": n, "reason"?: why it was rebuilt, ...}.
    """
    store = get_store() if store is None else store
    with store.cursor.lock:  # no catch-up of this index between swapping in the snapshot and replaying from its mark
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
        # The snapshot holds vectors only: the keyword index is read from the database's text, then
        # replayed from the same mark (applying a row's state twice is harmless).
        sync.keywords_reload(store=store)
        sync.vectors_fill(store=store)
        mark = manifest.get("changes_through")
        if mark is not None and sync.change_log_covers(mark):
            added, removed = sync.index_sync(store=store)
        else:
            added, removed = sync.index_reconcile_ids(store=store)
    if added or removed:
        logger.info(
            "embedding index at %s caught up with the database: %d vectors added, %d removed",
            store.folder,
            added,
            removed,
        )
        _save_or_log(store)
    _status.update(state="ready", origin="loaded", detail="", loaded_at=time.time())
    return {"origin": "loaded", "vectors": len(store), "added": added, "removed": removed, "manifest": manifest}


# --- following other processes ------------------------------------------------------------------
def index_follow() -> None:
    """Catch the process-wide index up every EMBEDDINGS_SYNC_SECONDS, for ever (a server's background thread)."""
    follower = sync.Follower(lambda: _store)
    while True:
        time.sleep(settings.EMBEDDINGS_SYNC_SECONDS)
        run_logged(follower.step, failure="catching up the embedding index failed", logger=logger)
        if follower.error != _status.get("sync_error", ""):
            _status["sync_error"] = follower.error


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
