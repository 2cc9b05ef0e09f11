"""The limits every embedding use case enforces, so the API, the CLI and RAG refuse the same things alike."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from llmsite.errors import ApplicationError

MAX_TOP_K = 50
# How passages are ranked: by meaning (FAISS), by words (BM25), or both fused (embeddings/keyword.py).
SEARCH_MODES = ("vector", "keyword", "hybrid")


def invalid(message: str, field: str) -> ApplicationError:
    """The 400 for a bad input, naming the field."""
    return ApplicationError(message, field=field)


def validate_texts(texts: Sequence[Any], *, field: str = "texts") -> list[str]:
    """Non-empty strings, at most EMBEDDINGS_MAX_BATCH of them, each at most EMBEDDINGS_MAX_TEXT_CHARS long."""
    limit, max_chars = settings.EMBEDDINGS_MAX_BATCH, settings.EMBEDDINGS_MAX_TEXT_CHARS
    if not texts:
        raise invalid(f"give at least one text (at most {limit})", field)
    if len(texts) > limit:
        raise invalid(f"too many texts: {len(texts)}, the limit is {limit} per request (EMBEDDINGS_MAX_BATCH)", field)
    for i, text in enumerate(texts):
        validate_text(text, field=f"{field}.{i}", max_chars=max_chars)
    return list(texts)


def validate_text(text: Any, *, field: str, max_chars: int | None = None) -> str:
    max_chars = max_chars or settings.EMBEDDINGS_MAX_TEXT_CHARS
    if not isinstance(text, str) or not text.strip():
        raise invalid("text must be a non-empty string", field)
    if len(text) > max_chars:
        raise invalid(
            f"text too long: {len(text)} characters, the limit is {max_chars} (EMBEDDINGS_MAX_TEXT_CHARS)", field
        )
    return text


def validate_metadata(metadata: Any, *, field: str) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise invalid("metadata must be a JSON object", field)
    limit = settings.EMBEDDINGS_MAX_METADATA_BYTES
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > limit:
        raise invalid(
            f"metadata too large: {size} bytes of JSON, the limit is {limit} (EMBEDDINGS_MAX_METADATA_BYTES)", field
        )
    return metadata


def validate_collection_name(name: Any, *, field: str = "collection") -> str:
    if not isinstance(name, str) or not name.strip():
        raise invalid("collection must be a non-empty name", field)
    name = name.strip()
    # The name is a segment of the collection's URL: what a client or proxy would rewrite there
    # ('.', '..', '/', '\\') or cannot send (control characters) would name a collection no one can reach.
    if len(name) > 100 or name in (".", "..") or any(c in "/\\" or not c.isprintable() for c in name):
        raise invalid(
            "collection names have 1 to 100 printable characters, no '/' or '\\', and are not '.' or '..'", field
        )
    return name


def validate_top_k(top_k: Any) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise invalid(f"top_k must be an integer from 1 to {MAX_TOP_K}", "top_k")
    return top_k


def validate_mode(mode: Any, *, field: str = "mode") -> str:
    """A search mode; None is the site's EMBEDDINGS_SEARCH_MODE."""
    if mode is None:
        return settings.EMBEDDINGS_SEARCH_MODE
    if mode not in SEARCH_MODES:
        raise invalid(f"{field} must be one of {', '.join(SEARCH_MODES)}", field)
    return mode
