"""Every deleted row that had a vector is logged for the indexes, whichever path deleted it.

A receiver rather than a line in `document_delete`: a collection deleted in the admin, or a user
deleted with everything they own, removes documents by cascade without passing through any
embeddings service. The receiver runs inside the deleting transaction, so the change commits (or
rolls back) with the rows.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver

from embeddings.models import Document, IndexChange
from embeddings.services.sync import change_log


@receiver(post_delete, sender=Document, dispatch_uid="embeddings.log_vector_removal")
def log_vector_removal(*, instance: Document, **kwargs: Any) -> None:
    if instance.indexed:
        change_log(kind=IndexChange.Kind.REMOVE, document_ids=[instance.pk])
