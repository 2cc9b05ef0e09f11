"""Adding files (PDF, DOCX, HTML, Markdown, text): sniffed, extracted, chunked by structure in encoder tokens.

A file becomes one source document (its whole text, not indexed) and chunk documents that carry
the vectors and where they came from (page, heading). Everything a file can be refused for is
checked before anything is written, and its rows (with the replaced upload's removal) go in one
transaction: a refused or failed upload leaves nothing behind.

Uploading a file with the same name to the same collection again replaces the earlier upload's
document and chunks; uploading the same text again changes nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from embeddings.chunking import Chunk, chunk_blocks
from embeddings.extraction import ExtractionError, Reason, extract, sniff
from embeddings.models import Document, IndexChange
from embeddings.services.documents import DEFAULT_COLLECTION, collection_get_or_create, content_hash
from embeddings.services.encoding import encode_metered
from embeddings.services.index import get_store, index_autosave, index_sync
from embeddings.services.sync import change_log, vector_bytes
from embeddings.services.validation import invalid, validate_collection_name
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError
from usage.services import Meter

MAX_FILENAME = 255
MAX_TITLE = 200
UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
PROGRESS_SECONDS = 600  # how long a finished upload's progress can still be read

Progress = Callable[..., None]


@dataclass
class FileAddResult:
    document_id: int
    created: bool  # False: the collection already had this text (nothing changed)
    chunks: int
    pages: int | None
    kind: str
    filename: str
    title: str
    collection: str
    replaced: list[int] = field(default_factory=list)  # earlier uploads of the same name, now gone


def file_refused(message: str, reason: Reason | str) -> ApplicationError:
    """The 400 for a file that cannot be ingested; `reason` is stable (docs/api.md lists them)."""
    return ApplicationError(message, field="file", details={"reason": str(reason)})


def clean_filename(raw: Any) -> str:
    """The file's own name (no folders a browser or client sent along), printable, at most 255 characters."""
    name = PurePosixPath(str(raw or "").replace("\\", "/")).name.strip()
    name = "".join(c for c in name if c.isprintable())[:MAX_FILENAME]
    return name or "upload"


def file_max_bytes() -> int:
    return settings.EMBEDDINGS_MAX_FILE_BYTES


def file_size_check(size: int | None, *, what: str, slack: int = 0) -> None:
    """Refuse (too_large) `what` of `size` bytes when it exceeds EMBEDDINGS_MAX_FILE_BYTES (+ `slack`)."""
    limit = file_max_bytes()
    if size is not None and size > limit + slack:
        raise file_refused(
            f"{what} has {size:,} bytes; files may have at most {limit:,} (EMBEDDINGS_MAX_FILE_BYTES)",
            Reason.TOO_LARGE,
        )


def file_chunk(blocks: Any, *, store: Any) -> list[Chunk]:
    """Chunks of at most EMBEDDINGS_CHUNK_TOKENS of the store's encoder's tokens (never more than it reads)."""
    encoder = store.encoder
    max_tokens = settings.EMBEDDINGS_CHUNK_TOKENS
    if encoder is not None and encoder.max_tokens:
        max_tokens = min(max_tokens, encoder.max_tokens)
    overlap = min(settings.EMBEDDINGS_CHUNK_OVERLAP_TOKENS, max_tokens // 2)
    # Without an encoder (a synthetic test store) words stand in for tokens.
    count = encoder.count_text_tokens if encoder is not None else (lambda text: math.ceil(len(text.split()) * 1.5))
    return chunk_blocks(blocks, max_tokens=max_tokens, overlap_tokens=overlap, count_tokens=count)


def _progress_key(user: Any, upload_id: str) -> str:
    return f"embeddings:upload:{user.pk}:{upload_id}"


def upload_progress_reporter(*, user: Any, upload_id: str | None) -> Progress | None:
    """A callback that records an upload's stage for `upload_progress_get` (None without an id).

    Kept in the default cache: with a shared cache (CACHE_URL=redis://...) any worker can answer
    the page's polls; with the per-process default, only the worker doing the upload can.
    """
    if upload_id is None:
        return None
    if not isinstance(upload_id, str) or not UPLOAD_ID.match(upload_id):
        raise invalid("upload_id has 8 to 64 letters, digits, '-' or '_'", "upload_id")
    key = _progress_key(user, upload_id)

    def report(stage: str, done: int = 0, total: int = 0) -> None:
        cache.set(key, {"stage": stage, "done": done, "total": total}, PROGRESS_SECONDS)

    return report


def upload_progress_get(*, user: Any, upload_id: str) -> dict[str, Any]:
    """{stage, done, total} of one of the user's uploads: extracting, encoding (done of total chunks), storing,
    done or failed. 404 for an unknown id (or another user's)."""
    found = cache.get(_progress_key(user, upload_id)) if UPLOAD_ID.match(upload_id or "") else None
    if found is None:
        raise ApplicationError(f"no upload {upload_id!r} in progress", status=404, code=ErrorCode.NOT_FOUND)
    return found


def file_add(
    *,
    user: Any,
    data: bytes,
    filename: str,
    collection: str | None = None,
    title: str | None = None,
    meter: Meter | None = None,
    progress: Progress | None = None,
) -> FileAddResult:
    """Add one file to one of the user's collections (created on demand) as a document with chunks.

    Raises ApplicationError 400 with `field` "file" and a `reason` (empty, too_large,
    too_many_pages, unsupported_type, type_mismatch, corrupt, encrypted, image_only, no_text)
    when the file cannot be used; nothing is stored then. `progress(stage, done, total)` is told
    the stages (extracting, encoding with chunks done of total, storing, done or failed).
    """
    report = progress or (lambda *args: None)
    report("extracting")
    try:
        result = _file_add(
            user=user, data=data, filename=filename, collection=collection, title=title, meter=meter, report=report
        )
    except BaseException:
        report("failed")
        raise
    report("done", result.chunks, result.chunks)
    return result


def _file_add(
    *,
    user: Any,
    data: bytes,
    filename: str,
    collection: str | None,
    title: str | None,
    meter: Meter | None,
    report: Progress,
) -> FileAddResult:
    name = validate_collection_name(DEFAULT_COLLECTION if collection is None else collection)
    filename = clean_filename(filename)
    if title is not None and (not isinstance(title, str) or len(title) > MAX_TITLE):
        raise invalid(f"title must be text of at most {MAX_TITLE} characters", "title")
    file_size_check(len(data), what=filename)
    try:
        kind = sniff(data, filename=filename)
        extracted = extract(data, kind=kind, max_pages=settings.EMBEDDINGS_MAX_FILE_PAGES)
    except ExtractionError as exc:
        raise file_refused(f"{filename}: {exc.message}", exc.reason) from exc
    text = extracted.text.strip()
    max_chars = settings.EMBEDDINGS_MAX_FILE_CHARS
    if len(text) > max_chars:
        raise file_refused(
            f"{filename} has {len(text):,} characters of text; the limit is {max_chars:,} (EMBEDDINGS_MAX_FILE_CHARS)",
            Reason.TOO_LARGE,
        )
    shown_title = (title or "").strip() or extracted.title or filename
    metadata: dict[str, Any] = {
        "title": shown_title[:MAX_TITLE],
        "filename": filename,
        "type": kind,
        "bytes": len(data),
    }
    if extracted.pages is not None:
        metadata["pages"] = extracted.pages
    digest = content_hash(text)

    existing = Document.objects.filter(
        collection__owner=user, collection__name=name, source__isnull=True, content_hash=digest
    ).first()
    if existing is not None:
        return _unchanged(existing, name=name, kind=kind, filename=filename, pages=extracted.pages)

    store = get_store()
    chunks = file_chunk(extracted.blocks, store=store)
    # Encode before touching the database: the slow part holds no transaction or lock.
    report("encoding", 0, len(chunks))
    texts = [c.text for c in chunks]
    vectors = encode_metered(texts, meter=meter, progress=lambda done, total: report("encoding", done, total))[0]
    report("storing", len(chunks), len(chunks))
    chunk_metadata = {key: metadata[key] for key in ("title", "filename")}
    try:
        with transaction.atomic():
            target = collection_get_or_create(user=user, name=name)
            replaced = list(
                Document.objects.filter(collection=target, source__isnull=True, metadata__filename=filename)
                .order_by("id")
                .values_list("id", flat=True)
            )
            # Removals are logged as the rows go (embeddings/signals.py), in this transaction.
            Document.objects.filter(id__in=replaced).delete()
            source = Document.objects.create(
                owner=user, collection=target, text=text, metadata=metadata, content_hash=digest, indexed=False
            )
            rows = Document.objects.bulk_create(
                Document(
                    owner=user,
                    collection=target,
                    text=chunk.text,
                    metadata=chunk_metadata,
                    content_hash=content_hash(chunk.text),
                    source=source,
                    chunk_index=i,
                    page=chunk.page,
                    heading=(chunk.heading or "")[:500],
                    vector=vector_bytes(vectors[i]),
                    vector_model=store.model_name,
                )
                for i, chunk in enumerate(chunks)
            )
            change_log(kind=IndexChange.Kind.ADD, document_ids=[row.id for row in rows])
    except IntegrityError:
        # The same text arrived in a concurrent upload: theirs stands.
        existing = Document.objects.get(
            collection__owner=user, collection__name=name, source__isnull=True, content_hash=digest
        )
        return _unchanged(existing, name=name, kind=kind, filename=filename, pages=extracted.pages)
    index_sync(store=store)
    index_autosave(store)
    return FileAddResult(
        document_id=source.id,
        created=True,
        chunks=len(rows),
        pages=extracted.pages,
        kind=kind,
        filename=filename,
        title=metadata["title"],
        collection=name,
        replaced=replaced,
    )


def _unchanged(doc: Document, *, name: str, kind: str, filename: str, pages: int | None) -> FileAddResult:
    return FileAddResult(
        document_id=doc.id,
        created=False,
        chunks=doc.chunks.count(),
        pages=pages,
        kind=kind,
        filename=filename,
        title=doc.title,
        collection=name,
    )


__all__ = [
    "FileAddResult",
    "clean_filename",
    "file_add",
    "file_chunk",
    "file_max_bytes",
    "file_refused",
    "file_size_check",
    "upload_progress_get",
    "upload_progress_reporter",
]
