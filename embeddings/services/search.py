"""Search by meaning among the collections a user may see, and retrieval of passages for grounded answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embeddings.models import Document
from embeddings.selectors import collection_for_user, collections_visible, searchable_ids
from embeddings.services.encoding import encode_metered
from embeddings.services.index import get_store
from embeddings.services.validation import validate_collection_name, validate_text, validate_top_k
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
    *, user: Any, query: Any, top_k: Any = 5, collection: str | None = None, meter: Meter | None = None
) -> list[SearchResult]:
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
    vectors, _tokens = encode_metered([query], meter=meter)  # the query's tokens are the meter's embedding usage
    hits = store.search(vectors, top_k, allowed_ids=allowed)[0]
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
                page=doc.page,
                heading=doc.heading or None,
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
                page=r.page,
                heading=r.heading,
            )
        )
    return chunks
