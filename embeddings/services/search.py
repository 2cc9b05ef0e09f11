"""Search among the collections a user may see, and retrieval of passages for grounded answers.

Three modes rank the passages (`mode`, else EMBEDDINGS_SEARCH_MODE): `vector` by meaning (FAISS,
cosine similarity), `keyword` by words (BM25), `hybrid` by both, fused by reciprocal rank
(embeddings/keyword.py). Both indexes are filtered to the same allowed rows, so no mode ever
returns a passage of a collection the user cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embeddings.keyword import hybrid_candidates, rrf_fuse
from embeddings.models import Document
from embeddings.selectors import collection_for_user, collections_visible, searchable_ids
from embeddings.services.encoding import encode_metered
from embeddings.services.index import get_store
from embeddings.services.validation import validate_collection_name, validate_mode, validate_text, validate_top_k
from embeddings.store import EmbeddingStore
from usage.services import Meter

SNIPPET_CHARS = 300


@dataclass(frozen=True)
class SearchResult:
    id: int
    text: str
    score: float
    metadata: dict[str, Any]
    collection: str
    document_id: int  # the source document for a chunk, else the document itself
    chunk_index: int | None
    page: int | None = None  # where an uploaded file's chunk came from, when known
    heading: str | None = None


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
    page: int | None = None
    heading: str | None = None


def search(
    *,
    user: Any,
    query: Any,
    top_k: Any = 5,
    collection: str | None = None,
    meter: Meter | None = None,
    mode: str | None = None,
) -> list[SearchResult]:
    """The `top_k` passages that best match `query` among what the user may see, best first.

    With `collection`: only that collection (the user's own of that name, else shared ones);
    404 when the user can see none. Without: all the user's own and all shared collections.
    `score` is the mode's own: cosine similarity (vector), BM25 (keyword), fused rank (hybrid).
    """
    query = validate_text(query, field="query")
    top_k = validate_top_k(top_k)
    mode = validate_mode(mode)
    if collection is not None:
        collections: Any = collection_for_user(user=user, name=validate_collection_name(collection))
    else:
        collections = collections_visible(user=user)
    allowed = searchable_ids(collections=collections)
    if not allowed:
        return []
    store = get_store()
    ranked = _rank(store, mode, query=query, top_k=top_k, allowed=allowed, meter=meter)
    docs = Document.objects.select_related("collection").in_bulk([doc_id for doc_id, _ in ranked])
    results = []
    for doc_id, score in ranked:
        doc = docs.get(doc_id)
        if doc is None:  # deleted since the search began
            continue
        results.append(
            SearchResult(
                id=doc.id,
                text=doc.text,
                score=score,
                metadata=doc.metadata,
                collection=doc.collection.name,
                document_id=doc.source_id or doc.id,
                chunk_index=doc.chunk_index,
                page=doc.page,
                heading=doc.heading or None,
            )
        )
    return results


def _rank(
    store: EmbeddingStore, mode: str, *, query: str, top_k: int, allowed: list[int], meter: Meter | None
) -> list[tuple[int, float]]:
    """(row id, score) best first, at most `top_k`, among `allowed` rows."""
    if mode == "keyword":  # nothing is encoded: no embedding usage
        return [(hit.id, hit.score) for hit in store.keywords.search(query, top_k, allowed_ids=allowed)]
    vectors, _tokens = encode_metered([query], meter=meter)  # the query's tokens are the meter's embedding usage
    if mode == "vector":
        return [(hit.id, hit.score) for hit in store.search(vectors, top_k, allowed_ids=allowed)[0]]
    candidates = hybrid_candidates(top_k)
    by_meaning = [hit.id for hit in store.search(vectors, candidates, allowed_ids=allowed)[0]]
    by_words = [hit.id for hit in store.keywords.search(query, candidates, allowed_ids=allowed)]
    return rrf_fuse([by_meaning, by_words])[:top_k]


def retrieve(*, user: Any, collection: str, query: str, top_k: int, mode: str | None = None) -> list[RetrievedChunk]:
    """Passages of `collection` for a RAG prompt, most relevant first (`mode` as in `search`).

    Raises ApplicationError: 404 when the user cannot see the collection, 400 for an empty
    query, top_k outside 1..50 or an unknown mode. Title comes from the source document (metadata
    title or filename, else its first line); snippet is the passage's first 300 characters.
    """
    results = search(user=user, query=query, top_k=top_k, collection=collection, mode=mode)
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
                page=r.page,
                heading=r.heading,
            )
        )
    return chunks
