"""Embedding jobs: `rebuild_index.enqueue()` re-encodes every document into a fresh index in a job worker."""

from __future__ import annotations

from django_tasks import task

from embeddings import services


@task()
def rebuild_index() -> int:
    """Rebuild the index from the database and save it; returns the vector count."""
    return services.index_rebuild()
