"""Documents and the collections that group them, their vectors, and the log of changes every index follows.

The database is the truth: each indexed row keeps its vector (float32 bytes) beside its text, so
an index is rebuilt or caught up by reading, never by encoding again. Every process's FAISS index
follows `IndexChange` (embeddings/services/sync.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Collection(models.Model):
    """A named set of documents owned by one user; `shared` (set by staff) lets every user search it."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collections")
    shared = models.BooleanField(default=False, help_text="Visible to every signed-in user (staff sets this).")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="collection_unique_name_per_owner")]

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"


class Document(models.Model):
    """One text and its metadata; a long text is kept whole and split into chunk documents that carry the vectors."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents")
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    text = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    # sha256 of the text: adding the same text to the same collection again is skipped.
    content_hash = models.CharField(max_length=64, db_index=True)
    source = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="chunks", help_text="Set on chunks."
    )
    chunk_index = models.PositiveIntegerField(null=True, blank=True)
    # Where a chunk of an uploaded file came from, so an answer can cite "page 3" or its section.
    page = models.PositiveIntegerField(null=True, blank=True, help_text="Page of the file (from 1), when it has pages.")
    heading = models.CharField(max_length=500, blank=True, default="", help_text="The heading the chunk falls under.")
    # Whether this row has a vector in the index: short documents and chunks do; a chunked source does not.
    indexed = models.BooleanField(default=True)
    # The row's unit vector as float32 bytes, and the embedding model that made it. Empty on rows
    # stored before vectors were kept (the first load fills them in) and on chunked sources.
    vector = models.BinaryField(null=True, blank=True, editable=False)
    vector_model = models.CharField(max_length=200, blank=True, default="", editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "content_hash"],
                condition=Q(source__isnull=True),
                name="document_unique_text_per_collection",
            ),
        ]
        indexes = [models.Index(fields=["collection", "indexed"], name="document_collection_indexed")]

    def __str__(self) -> str:
        suffix = f" chunk {self.chunk_index}" if self.chunk_index is not None else ""
        return f"#{self.pk}{suffix}: {self.text[:60]}"

    @property
    def title(self) -> str:
        """A human label: metadata title/filename, else the first line of the text."""
        meta = self.metadata if isinstance(self.metadata, dict) else {}
        for key in ("title", "filename", "source", "path"):
            value = meta.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:200]
        first_line = self.text.strip().splitlines()[0] if self.text.strip() else ""
        return first_line[:80]


class IndexChange(models.Model):
    """One vector row added to or removed from the index; every process applies these to its own FAISS index.

    Written in the transaction that changes the documents, so a change is visible exactly when
    its rows are. Ids come from the database's sequence but may commit out of order: readers
    track holes (embeddings/cursor.py). Old rows are pruned; a snapshot older than what is left
    is reconciled with the documents instead.
    """

    class Kind(models.TextChoices):
        ADD = "add"
        REMOVE = "remove"
        RELOAD = "reload"  # every vector was re-encoded: indexes reload them all from the database

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Not a foreign key: a removal outlives its row. Empty for a reload.
    document_id = models.BigIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.document_id or ''}".rstrip()
