"""Embedding jobs: `manage.py rebuild_index --background` enqueues `rebuild_index` for a job worker."""

from __future__ import annotations

from django_tasks import task

from embeddings import services


@task()
def rebuild_index(reencode: bool = False) -> int:
    """Rebuild the index from the vectors stored in the database and save it; returns the vector count.

    With `reencode`, every document is encoded again; the other servers then reload the new vectors
    through the change log.
    """
    return services.index_rebuild(reencode=reencode)
