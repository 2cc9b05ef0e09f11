"""Answers grounded in a user's documents: retrieve passages, put them in front of the question.

The passages go in a system message (merged into the caller's own system message when there is
one) numbered [1]..[k], so the model can cite them and the client can show them as `sources`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from inference.providers.base import Message

INSTRUCTIONS = (
    "Answer the question using the numbered context passages below. Cite the passages you use "
    "like [1]. If the context does not contain the answer, say that you do not know."
)


@dataclass(frozen=True)
class Source:
    """One passage an answer was grounded in (`sources` in the predict response)."""

    id: int
    document_id: int
    title: str
    snippet: str
    score: float
    metadata: dict[str, Any]
    page: int | None = None  # where in its file, when the file said
    heading: str | None = None

    def as_dict(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "document_id": self.document_id,
            "title": self.title,
            "snippet": self.snippet,
            "score": round(self.score, 4),
            "metadata": self.metadata,
        }
        if self.page is not None:
            body["page"] = self.page
        if self.heading:
            body["heading"] = self.heading
        return body


def ground(
    *,
    user: Any,
    collection: str,
    top_k: int | None,
    prompt: str | None,
    messages: Sequence[Message] | None,
    mode: str | None = None,
) -> tuple[tuple[Message, ...], tuple[Source, ...]]:
    """The messages to send (context first) and the passages retrieved for them.

    The query is the prompt, or the last user message; `mode` ranks passages by meaning, words or
    both (None: EMBEDDINGS_SEARCH_MODE). Raises ApplicationError from retrieval: 404 for a
    collection the user cannot see, 400 for an empty query or top_k out of range.
    """
    from embeddings.services import retrieve  # embeddings is optional for plain completions

    turns = tuple(messages) if messages is not None else (Message("user", prompt or ""),)
    query = next((m.content for m in reversed(turns) if m.role == "user"), "")
    chunks = retrieve(user=user, collection=collection, query=query, top_k=top_k or settings.RAG_TOP_K, mode=mode)
    sources = tuple(
        Source(c.id, c.document_id, c.title, c.snippet, c.score, c.metadata, page=c.page, heading=c.heading)
        for c in chunks
    )
    if not chunks:
        context = "(no passage of the collection matches the question)"
    else:
        labels = [_label(c) for c in chunks]
        context = "\n\n".join(
            f"[{n}] {label}\n{c.text}" if label else f"[{n}] {c.text}"
            for n, (c, label) in enumerate(zip(chunks, labels, strict=True), 1)
        )
    system = f"{INSTRUCTIONS}\n\nContext:\n{context}"
    if turns and turns[0].role == "system":
        return (Message("system", f"{turns[0].content}\n\n{system}"), *turns[1:]), sources
    return (Message("system", system), *turns), sources


def _label(chunk: Any) -> str:
    """How a passage is named in the prompt: its title, and the page it is on when known ("report.pdf, page 3")."""
    page = getattr(chunk, "page", None)
    return f"{chunk.title}, page {page}" if chunk.title and page else chunk.title or (f"page {page}" if page else "")
