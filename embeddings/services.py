"""Embedding use cases: add, delete, search, retrieve for RAG, and keeping the index in step with the database.

The process-wide store is built lazily from settings on first use (or at server start, see
apps.py), like Channels' layer manager: `get_store()` builds it, `set_store()` swaps one in
for tests, and changing an embedding setting resets it. Loading verifies the saved index;
a missing, corrupt or mismatched one is rebuilt from the database with a warning, and a
loaded one is reconciled with the database (vectors added or dropped), so the index never
answers with documents that are not there or misses ones that are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.core.signals import setting_changed
from django.db import IntegrityError, transaction
from django.dispatch import receiver

from embeddings.models import Collection, Document
from embeddings.selectors import collection_for_user, collections_visible, searchable_ids
from embeddings.store import EmbeddingStore, Encoder, IndexMissing, StoreError
from llmsite.errors import ApplicationError, ServiceUnavailable
from llmsite.model_store import ModelNotFound, resolve_encoder_folder

logger = logging.getLogger(__name__)

DEFAULT_COLLECTION = "default"
MAX_TOP_K = 50
SNIPPET_CHARS = 300
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
    rows = Document.objects.filter(indexed=True).order_by("id").values_list("id", "text").iterator(chunk_size=1000)
    ids, vectors = _encode_rows(store, rows, progress)
    store.replace_all(ids, vectors)
    if save:
        index_save(store=store)
    _status.update(origin="rebuilt", rebuilt_at=time.time())
    return len(ids)


def index_rebuild_count() -> int:
    """How many documents a rebuild encodes (for progress bars)."""
    return Document.objects.filter(indexed=True).count()


def index_save(*, store: EmbeddingStore | None = None) -> dict[str, Any]:
    """Write the index and its manifest to EMBEDDINGS_DIR atomically; returns the manifest."""
    store = get_store() if store is None else store
    manifest = store.save()
    _status.update(saved_at=manifest["saved_at"])
    return manifest


def index_reconcile(*, store: EmbeddingStore | None = None) -> tuple[int, int]:
    """Make the index hold exactly the database's indexed documents; returns (added, removed)."""
    store = get_store() if store is None else store
    in_db = set(Document.objects.filter(indexed=True).values_list("id", flat=True))
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
        count = index_rebuild(store=store)
        _status.update(state="ready", origin="rebuilt", detail=str(exc), loaded_at=time.time())
        return {"origin": "rebuilt", "reason": str(exc), "vectors": count}
    added, removed = index_reconcile(store=store)
    if added or removed:
        logger.warning(
            "embedding index at %s was behind the database: %d vectors added, %d removed", store.folder, added, removed
        )
        index_save(store=store)
    _status.update(state="ready", origin="loaded", detail="", loaded_at=time.time())
    return {"origin": "loaded", "vectors": len(store), "added": added, "removed": removed, "manifest": manifest}


def _autosave(store: EmbeddingStore) -> None:
    if settings.EMBEDDINGS_AUTOSAVE:
        try:
            index_save(store=store)
        except OSError:
            # The index in memory is right and the database holds the text: the next start repairs the file.
            logger.exception("saving the embedding index failed")


# --- validation ----------------------------------------------------------------------------------
def _invalid(message: str, field: str) -> ApplicationError:
    return ApplicationError(message, field=field)


def validate_texts(texts: Sequence[Any], *, field: str = "texts") -> list[str]:
    """Non-empty strings, at most EMBEDDINGS_MAX_BATCH of them, each at most EMBEDDINGS_MAX_TEXT_CHARS long."""
    limit, max_chars = settings.EMBEDDINGS_MAX_BATCH, settings.EMBEDDINGS_MAX_TEXT_CHARS
    if not texts:
        raise _invalid(f"give at least one text (at most {limit})", field)
    if len(texts) > limit:
        raise _invalid(f"too many texts: {len(texts)}, the limit is {limit} per request (EMBEDDINGS_MAX_BATCH)", field)
    for i, text in enumerate(texts):
        validate_text(text, field=f"{field}.{i}", max_chars=max_chars)
    return list(texts)


def validate_text(text: Any, *, field: str, max_chars: int | None = None) -> str:
    max_chars = max_chars or settings.EMBEDDINGS_MAX_TEXT_CHARS
    if not isinstance(text, str) or not text.strip():
        raise _invalid("text must be a non-empty string", field)
    if len(text) > max_chars:
        raise _invalid(
            f"text too long: {len(text)} characters, the limit is {max_chars} (EMBEDDINGS_MAX_TEXT_CHARS)", field
        )
    return text


def validate_metadata(metadata: Any, *, field: str) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise _invalid("metadata must be a JSON object", field)
    limit = settings.EMBEDDINGS_MAX_METADATA_BYTES
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > limit:
        raise _invalid(
            f"metadata too large: {size} bytes of JSON, the limit is {limit} (EMBEDDINGS_MAX_METADATA_BYTES)", field
        )
    return metadata


def validate_collection_name(name: Any, *, field: str = "collection") -> str:
    if not isinstance(name, str) or not name.strip():
        raise _invalid("collection must be a non-empty name", field)
    name = name.strip()
    if len(name) > 100 or "/" in name:
        raise _invalid("collection names have 1 to 100 characters and no '/'", field)
    return name


def validate_top_k(top_k: Any) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise _invalid(f"top_k must be an integer from 1 to {MAX_TOP_K}", "top_k")
    return top_k


# --- documents -------------------------------------------------------------------------------------
def content_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()


def chunk_text(text: str, *, size: int | None = None, overlap: int | None = None) -> list[str]:
    """Split `text` into pieces of at most `size` characters, each overlapping the previous by about `overlap`.

    Cuts prefer whitespace in the last quarter of a window, so words stay whole where they can.
    A text no longer than `size` is one chunk.
    """
    size = size or settings.EMBEDDINGS_CHUNK_CHARS
    overlap = settings.EMBEDDINGS_CHUNK_OVERLAP if overlap is None else overlap
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and less than size")
    text = text.strip()
    if len(text) <= size:
        return [text]
    chunks: list[str] = []
    start, n = 0, len(text)
    while True:
        end = min(start + size, n)
        if end < n:
            cut = max(text.rfind(" ", start + size * 3 // 4, end), text.rfind("\n", start + size * 3 // 4, end))
            if cut > start:
                end = cut
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= n:
            return chunks
        next_start = max(end - overlap, start + 1)
        if overlap:
            # Begin the next chunk at a word boundary inside the overlap.
            space = text.find(" ", next_start, end)
            if space != -1 and space + 1 < end:
                next_start = space + 1
        start = next_start


@dataclass
class AddResult:
    ids: list[int]
    created: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    chunks: int = 0


def collection_get_or_create(*, user: Any, name: str) -> Collection:
    try:
        collection, _ = Collection.objects.get_or_create(owner=user, name=name)
    except IntegrityError:  # created by a concurrent request between the get and the create
        collection = Collection.objects.get(owner=user, name=name)
    return collection


def document_add(*, user: Any, documents: Sequence[Mapping[str, Any]], collection: str | None = None) -> AddResult:
    """Add documents to one of the user's collections (created on demand); texts already there are skipped.

    `ids` has one id per input document, in order (the existing document's id for a skipped
    duplicate). Texts longer than EMBEDDINGS_CHUNK_CHARS are stored whole and indexed as
    overlapping chunk documents that point at them.
    """
    limit = settings.EMBEDDINGS_MAX_BATCH
    if not documents:
        raise _invalid(f"give at least one document (at most {limit})", "documents")
    if len(documents) > limit:
        raise _invalid(
            f"too many documents: {len(documents)}, the limit is {limit} per request (EMBEDDINGS_MAX_BATCH)",
            "documents",
        )
    parsed: list[tuple[str, dict[str, Any]]] = []
    for i, doc in enumerate(documents):
        text = validate_text(doc.get("text"), field=f"documents.{i}.text")
        parsed.append((text.strip(), validate_metadata(doc.get("metadata"), field=f"documents.{i}.metadata")))
    name = validate_collection_name(DEFAULT_COLLECTION if collection is None else collection)

    store = get_store()
    target = collection_get_or_create(user=user, name=name)
    hashes = [content_hash(text) for text, _ in parsed]
    existing = dict(
        Document.objects.filter(collection=target, source__isnull=True, content_hash__in=hashes).values_list(
            "content_hash", "id"
        )
    )
    # One plan per distinct new text; duplicates within the batch point at the first.
    plans: dict[str, tuple[str, dict[str, Any], list[str]]] = {}
    for (text, metadata), digest in zip(parsed, hashes, strict=True):
        if digest not in existing and digest not in plans:
            plans[digest] = (text, metadata, chunk_text(text))

    # Encode before touching the database: the slow part holds no transaction or lock.
    flat_texts = [piece for _, _, pieces in plans.values() for piece in pieces]
    vectors = store.encode(flat_texts) if flat_texts else np.zeros((0, store.dim), dtype=np.float32)

    result = AddResult(ids=[])
    new_ids: list[int] = []
    new_vectors: list[np.ndarray] = []
    offset = 0
    for digest, (text, metadata, pieces) in plans.items():
        piece_vectors = vectors[offset : offset + len(pieces)]
        offset += len(pieces)
        try:
            with transaction.atomic():
                doc = Document.objects.create(
                    owner=user,
                    collection=target,
                    text=text,
                    metadata=metadata,
                    content_hash=digest,
                    indexed=len(pieces) == 1,
                )
                if len(pieces) == 1:
                    vector_ids = [doc.id]
                else:
                    chunks = Document.objects.bulk_create(
                        Document(
                            owner=user,
                            collection=target,
                            text=piece,
                            metadata=metadata,
                            content_hash=content_hash(piece),
                            source=doc,
                            chunk_index=i,
                        )
                        for i, piece in enumerate(pieces)
                    )
                    vector_ids = [c.id for c in chunks]
                    result.chunks += len(chunks)
        except IntegrityError:
            # The same text arrived in a concurrent request: theirs stands, ours is a duplicate.
            existing[digest] = Document.objects.get(collection=target, source__isnull=True, content_hash=digest).id
            continue
        existing[digest] = doc.id
        result.created.append(doc.id)
        new_ids.extend(vector_ids)
        new_vectors.append(piece_vectors)

    for digest in hashes:
        doc_id = existing[digest]
        result.ids.append(doc_id)
        if doc_id not in result.created and doc_id not in result.skipped:
            result.skipped.append(doc_id)
    if new_ids:
        store.add(new_ids, np.concatenate(new_vectors))
        _autosave(store)
    return result


def document_delete(*, user: Any, document_id: int) -> int:
    """Delete one of the user's documents (with its chunks) and its vectors; returns how many rows went.

    Another user's document is a 404, exactly like a missing one.
    """
    doc = Document.objects.filter(pk=document_id, owner=user).first()
    if doc is None:
        raise ApplicationError(f"document {document_id} not found", status=404, code="not_found")
    ids = [doc.id, *doc.chunks.values_list("id", flat=True)]
    store = get_store()
    with transaction.atomic():
        Document.objects.filter(id__in=ids).delete()
    if store.remove(ids):
        _autosave(store)
    return len(ids)


# --- search and retrieval ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchResult:
    id: int
    text: str
    score: float
    metadata: dict[str, Any]
    collection: str
    document_id: int  # the source document for a chunk, else the document itself
    chunk_index: int | None


@dataclass(frozen=True)
class RetrievedChunk:
    """One retrieved passage for a RAG prompt and its `sources` entry."""

    id: int
    text: str
    score: float
    metadata: dict[str, Any]
    document_id: int
    title: str
    snippet: str


def encode(*, texts: Sequence[Any], field: str = "texts") -> tuple[str, int, np.ndarray]:
    """(model name, dimension, unit vectors) for validated texts (errors name `field`)."""
    texts = validate_texts(texts, field=field)
    store = get_store()
    return store.model_name, store.dim, store.encode(texts)


def encode_with_usage(*, texts: Sequence[Any], field: str = "texts") -> tuple[str, np.ndarray, int]:
    """`encode` plus the tokens the encoder read: OpenAI's /v1/embeddings reports them as usage."""
    model, _dim, vectors = encode(texts=texts, field=field)
    encoder = get_store().encoder
    tokens = encoder.count_tokens(list(texts)) if encoder is not None else 0
    return model, vectors, tokens


def search(*, user: Any, query: Any, top_k: Any = 5, collection: str | None = None) -> list[SearchResult]:
    """The `top_k` passages most similar to `query` among what the user may see, best first.

    With `collection`: only that collection (the user's own of that name, else shared ones);
    404 when the user can see none. Without: all the user's own and all shared collections.
    """
    query = validate_text(query, field="query")
    top_k = validate_top_k(top_k)
    if collection is not None:
        collections: Any = collection_for_user(user=user, name=validate_collection_name(collection))
    else:
        collections = collections_visible(user=user)
    allowed = searchable_ids(collections=collections)
    if not allowed:
        return []
    store = get_store()
    hits = store.search(store.encode([query]), top_k, allowed_ids=allowed)[0]
    docs = Document.objects.select_related("collection").in_bulk([hit.id for hit in hits])
    results = []
    for hit in hits:
        doc = docs.get(hit.id)
        if doc is None:  # deleted since the search began
            continue
        results.append(
            SearchResult(
                id=doc.id,
                text=doc.text,
                score=hit.score,
                metadata=doc.metadata,
                collection=doc.collection.name,
                document_id=doc.source_id or doc.id,
                chunk_index=doc.chunk_index,
            )
        )
    return results


def retrieve(*, user: Any, collection: str, query: str, top_k: int) -> list[RetrievedChunk]:
    """Passages of `collection` for a RAG prompt, most relevant first.

    Raises ApplicationError: 404 when the user cannot see the collection, 400 for an empty
    query or top_k outside 1..50. Title comes from the source document (metadata title or
    filename, else its first line); snippet is the passage's first 300 characters.
    """
    results = search(user=user, query=query, top_k=top_k, collection=collection)
    sources = Document.objects.in_bulk({r.document_id for r in results})
    chunks = []
    for r in results:
        source = sources.get(r.document_id)
        title = source.title if source is not None else ""
        snippet = r.text if len(r.text) <= SNIPPET_CHARS else r.text[:SNIPPET_CHARS].rstrip() + "…"
        chunks.append(
            RetrievedChunk(
                id=r.id,
                text=r.text,
                score=r.score,
                metadata=r.metadata,
                document_id=r.document_id,
                title=title,
                snippet=snippet,
            )
        )
    return chunks


def stats(*, user: Any) -> dict[str, Any]:
    """Model, dimension, index type and counts (site-wide, and the user's own under `yours`)."""
    store = get_store()
    status = store_status()
    return {
        "model": store.model_name,
        "dim": store.dim,
        "index_type": store.index_type,
        "documents": Document.objects.filter(source__isnull=True).count(),
        "vectors": len(store),
        "collections": Collection.objects.count(),
        "visible_collections": collections_visible(user=user).count(),
        "yours": {
            "documents": Document.objects.filter(owner=user, source__isnull=True).count(),
            "collections": Collection.objects.filter(owner=user).count(),
        },
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
