"""Reads: which collections and documents a user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from embeddings.models import Collection, Document
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError


def collections_visible(*, user: Any) -> QuerySet[Collection]:
    """The user's own collections and every shared one."""
    return Collection.objects.filter(Q(owner=user) | Q(shared=True))


def collection_for_user(*, user: Any, name: str, owner: str | None = None) -> list[Collection]:
    """The collections `name` means to this user: their own, else the shared ones of that name.

    Raises ApplicationError 404 when the user can see no collection of that name (another
    user's private collection looks exactly like a missing one).
    """
    visible = collections_visible(user=user).filter(name=name).select_related("owner")
    if owner:
        found = list(visible.filter(owner__username=owner))
    else:
        own = [c for c in visible if c.owner_id == user.pk]
        found = own or [c for c in visible if c.shared]
    if not found:
        raise ApplicationError(
            f"collection {name!r} not found", status=404, code=ErrorCode.NOT_FOUND, field="collection"
        )
    return found


def collection_list(*, user: Any) -> QuerySet[Collection]:
    """Visible collections with `documents` (top-level) and `chunks` (indexed rows) counts."""
    return (
        collections_visible(user=user)
        .select_related("owner")
        .annotate(
            documents_count=Count("documents", filter=Q(documents__source__isnull=True)),
            vectors_count=Count("documents", filter=Q(documents__indexed=True)),
        )
        .order_by("name", "owner__username")
    )


def collection_documents(*, collections: list[Collection]) -> QuerySet[Document]:
    """Top-level documents (not chunks) of these collections, newest first, with their chunk counts."""
    return (
        Document.objects.filter(collection__in=collections, source__isnull=True)
        .annotate(chunks_count=Count("chunks"))
        .order_by("-created", "-id")
    )


def searchable_ids(*, collections: list[Collection] | QuerySet[Collection]) -> list[int]:
    """Ids of the documents that carry vectors in these collections."""
    return list(Document.objects.filter(collection__in=collections, indexed=True).values_list("id", flat=True))


def indexed_documents() -> QuerySet[Document]:
    """Every row that carries a vector in the index (short documents and chunks, not chunked sources)."""
    return Document.objects.filter(indexed=True)


def document_counts(*, user: Any) -> dict[str, Any]:
    """Documents (not chunks) and collections site-wide, the collections `user` can see, and their own under `yours`."""
    return {
        "documents": Document.objects.filter(source__isnull=True).count(),
        "collections": Collection.objects.count(),
        "visible_collections": collections_visible(user=user).count(),
        "yours": {
            "documents": Document.objects.filter(owner=user, source__isnull=True).count(),
            "collections": Collection.objects.filter(owner=user).count(),
        },
    }
