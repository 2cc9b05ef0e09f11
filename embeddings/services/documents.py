"""Documents and collections: adding texts (chunked, deduplicated, encoded) and deleting them, rows and vectors.

Deleting a collection deletes its documents, their chunks and their vectors in one transaction.

Each indexed row is stored with its vector and logged in the change log in one transaction; the
index (this process's and every other's) then catches up from the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from embeddings.models import Collection, Document, IndexChange
from embeddings.services.encoding import encode_metered
from embeddings.services.index import get_store, index_autosave, index_sync
from embeddings.services.sync import change_log, vector_bytes
from embeddings.services.validation import invalid, validate_collection_name, validate_metadata, validate_text
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError
from usage.services import Meter

DEFAULT_COLLECTION = "default"


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


def document_add(
    *, user: Any, documents: Sequence[Mapping[str, Any]], collection: str | None = None, meter: Meter | None = None
) -> AddResult:
    """Add documents to one of the user's collections (created on demand); texts already there are skipped.

    `ids` has one id per input document, in order (the existing document's id for a skipped
    duplicate). Texts longer than EMBEDDINGS_CHUNK_CHARS are stored whole and indexed as
    overlapping chunk documents that point at them. With a `meter`, the encoded tokens are
    embedding usage of its payer (held before encoding: QuotaExceeded 429 past a limit).
    """
    limit = settings.EMBEDDINGS_MAX_BATCH
    if not documents:
        raise invalid(f"give at least one document (at most {limit})", "documents")
    if len(documents) > limit:
        raise invalid(
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
    if flat_texts:
        vectors, _tokens = encode_metered(flat_texts, meter=meter)
    else:
        vectors = np.zeros((0, store.dim), dtype=np.float32)

    result = AddResult(ids=[])
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
                    vector=vector_bytes(piece_vectors[0]) if len(pieces) == 1 else None,
                    vector_model=store.model_name if len(pieces) == 1 else "",
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
                            vector=vector_bytes(piece_vectors[i]),
                            vector_model=store.model_name,
                        )
                        for i, piece in enumerate(pieces)
                    )
                    vector_ids = [c.id for c in chunks]
                    result.chunks += len(chunks)
                # Last in the transaction: the change is visible to other workers exactly when the rows are.
                change_log(kind=IndexChange.Kind.ADD, document_ids=vector_ids)
        except IntegrityError:
            # The same text arrived in a concurrent request: theirs stands, ours is a duplicate.
            existing[digest] = Document.objects.get(collection=target, source__isnull=True, content_hash=digest).id
            continue
        existing[digest] = doc.id
        result.created.append(doc.id)

    for digest in hashes:
        doc_id = existing[digest]
        result.ids.append(doc_id)
        if doc_id not in result.created and doc_id not in result.skipped:
            result.skipped.append(doc_id)
    if result.created:
        # Through the change log, like every other worker: one path into the index, so a document
        # deleted elsewhere meanwhile is not added back here.
        index_sync(store=store)
        index_autosave(store)
    return result


def document_delete(*, user: Any, document_id: int) -> int:
    """Delete one of the user's documents (with its chunks) and its vectors; returns how many rows went.

    Another user's document is a 404, exactly like a missing one.
    """
    doc = Document.objects.filter(pk=document_id, owner=user).first()
    if doc is None:
        raise ApplicationError(f"document {document_id} not found", status=404, code=ErrorCode.NOT_FOUND)
    ids = [doc.id, *doc.chunks.values_list("id", flat=True)]
    store = get_store()
    with transaction.atomic():
        Document.objects.filter(id__in=ids).delete()  # the removals are logged as the rows go (embeddings/signals.py)
    _added, removed = index_sync(store=store)
    if removed:
        index_autosave(store)
    return len(ids)


@dataclass(frozen=True)
class CollectionDeleted:
    documents: int  # top-level documents (not counting chunks)
    vectors: int  # rows that had a vector in the index


def collection_delete(*, user: Any, name: Any) -> CollectionDeleted:
    """Delete one of the user's collections: its documents, their chunks and their vectors, on every server.

    Only the owner deletes: a shared collection of another user, like a missing one, is a 404.
    The removals are logged as the rows go (embeddings/signals.py), in the same transaction, so
    every process's indexes (vectors and keywords) drop them when they next catch up; this one at once.
    """
    name = validate_collection_name(name)
    collection = Collection.objects.filter(owner=user, name=name).first()
    if collection is None:
        raise ApplicationError(
            f"collection {name!r} not found among yours", status=404, code=ErrorCode.NOT_FOUND, field="collection"
        )
    store = get_store()
    with transaction.atomic():
        rows = Document.objects.filter(collection=collection)
        deleted = CollectionDeleted(
            documents=rows.filter(source__isnull=True).count(), vectors=rows.filter(indexed=True).count()
        )
        collection.delete()  # documents and chunks go by cascade, each removal logged
    _added, removed = index_sync(store=store)
    if removed:
        index_autosave(store)
    return deleted
