"""Encoding texts into vectors with the process-wide encoder, for /api/v1/embed/encode and /v1/embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from embeddings.services.index import get_store
from embeddings.services.validation import validate_texts
from usage.services import Meter


def model_id(name: str) -> str:
    """The embedding model's id as clients name it (GET /v1/models): the last part of its name or folder."""
    return name.rstrip("/").rsplit("/", 1)[-1]


PROGRESS_BATCH = 64  # texts encoded between two progress reports


def _encode(store: Any, texts: list[str], progress: Callable[[int, int], None] | None) -> np.ndarray:
    if progress is None or len(texts) <= PROGRESS_BATCH:
        vectors = store.encode(texts)
        if progress is not None:
            progress(len(texts), len(texts))
        return vectors
    parts = []
    for start in range(0, len(texts), PROGRESS_BATCH):
        parts.append(store.encode(texts[start : start + PROGRESS_BATCH]))
        progress(min(start + PROGRESS_BATCH, len(texts)), len(texts))
    return np.concatenate(parts)


def encode_metered(
    texts: list[str], *, meter: Meter | None, progress: Callable[[int, int], None] | None = None
) -> tuple[np.ndarray, int]:
    """Vectors of validated texts and the tokens the encoder read.

    With a `meter`, the tokens are held on its payer's limits before encoding (QuotaExceeded:
    429) and settled into the ledger as embedding usage once the vectors are made. With
    `progress`, it is called with (texts encoded, texts) as batches finish.
    """
    store = get_store()
    encoder = store.encoder
    tokens = encoder.count_tokens(list(texts)) if encoder is not None and texts else 0
    if meter is None:
        return _encode(store, texts, progress), tokens
    model = model_id(store.model_name)
    meter.check_model(model)
    reservation = meter.reserve(model=model, prompt_tokens=tokens, max_tokens=0, kind="embedding")
    try:
        vectors = _encode(store, texts, progress)
    except BaseException:
        reservation.release()
        raise
    reservation.settle(prompt_tokens=tokens, completion_tokens=0)
    return vectors, tokens


def encode(*, texts: Sequence[Any], field: str = "texts", meter: Meter | None = None) -> tuple[str, int, np.ndarray]:
    """(model name, dimension, unit vectors) for validated texts (errors name `field`)."""
    texts = validate_texts(texts, field=field)
    store = get_store()
    vectors, _tokens = encode_metered(texts, meter=meter)
    return store.model_name, store.dim, vectors


def encode_with_usage(
    *, texts: Sequence[Any], field: str = "texts", meter: Meter | None = None
) -> tuple[str, np.ndarray, int]:
    """`encode` plus the tokens the encoder read: OpenAI's /v1/embeddings reports them as usage."""
    texts = validate_texts(texts, field=field)
    store = get_store()
    vectors, tokens = encode_metered(texts, meter=meter)
    return store.model_name, vectors, tokens
