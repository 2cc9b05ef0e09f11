"""Embedding use cases, one module each; import them from here (`from embeddings.services import search`).

- `index`: the process-wide store (encoder + FAISS index), built lazily from settings, and keeping
  its index in step with the database (load, verify, catch up, reconcile, rebuild, save), stats.
- `sync`: vectors stored in the database, the change log, and catching an index up from them
  without encoding (how several workers share one document index).
- `documents`: adding texts to collections (chunked, deduplicated) and deleting them, or whole collections.
- `files`: adding files (PDF, DOCX, HTML, Markdown, text): sniffed, extracted, chunked by structure.
- `search`: search by meaning, by words or both (hybrid), and retrieval of passages for grounded answers.
- `encoding`: texts to vectors for the encode endpoints.
- `validation`: the limits all of them enforce, with the same messages.

Pure reads (visible collections, counts) live in `embeddings.selectors`.
"""

from embeddings.services.documents import (
    DEFAULT_COLLECTION,
    AddResult,
    CollectionDeleted,
    chunk_text,
    collection_delete,
    collection_get_or_create,
    content_hash,
    document_add,
    document_delete,
)
from embeddings.services.encoding import encode, encode_with_usage
from embeddings.services.files import (
    FileAddResult,
    file_add,
    file_max_bytes,
    file_size_check,
    upload_progress_get,
    upload_progress_reporter,
)
from embeddings.services.index import (
    REBUILD_BATCH,
    IndexSaveFailed,
    build_store,
    get_encoder,
    get_store,
    index_autosave,
    index_follow,
    index_load,
    index_rebuild,
    index_rebuild_count,
    index_reconcile,
    index_save,
    index_sync,
    reset_store,
    set_store,
    stats,
    store_status,
)
from embeddings.services.search import SNIPPET_CHARS, RetrievedChunk, SearchResult, retrieve, search
from embeddings.services.validation import (
    MAX_TOP_K,
    SEARCH_MODES,
    validate_collection_name,
    validate_metadata,
    validate_mode,
    validate_text,
    validate_texts,
    validate_top_k,
)

__all__ = [
    "DEFAULT_COLLECTION",
    "MAX_TOP_K",
    "REBUILD_BATCH",
    "SEARCH_MODES",
    "SNIPPET_CHARS",
    "AddResult",
    "CollectionDeleted",
    "FileAddResult",
    "IndexSaveFailed",
    "RetrievedChunk",
    "SearchResult",
    "build_store",
    "chunk_text",
    "collection_delete",
    "collection_get_or_create",
    "content_hash",
    "document_add",
    "document_delete",
    "encode",
    "encode_with_usage",
    "file_add",
    "file_max_bytes",
    "file_size_check",
    "get_encoder",
    "get_store",
    "index_autosave",
    "index_follow",
    "index_load",
    "index_rebuild",
    "index_rebuild_count",
    "index_reconcile",
    "index_save",
    "index_sync",
    "reset_store",
    "retrieve",
    "search",
    "set_store",
    "stats",
    "store_status",
    "upload_progress_get",
    "upload_progress_reporter",
    "validate_collection_name",
    "validate_metadata",
    "validate_mode",
    "validate_text",
    "validate_texts",
    "validate_top_k",
]
