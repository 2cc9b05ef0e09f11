"""Encoding texts into vectors with the process-wide encoder, for /api/v1/embed/encode and /v1/embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embeddings.services.index import get_store
from embeddings.services.validation import validate_texts


def encode(*, texts: Sequence[Any], field: str = "texts") -> tuple[str, int, np.ndarray]:
    """(model name, dimension, unit vectors) for validated texts (errors name `field`)."""
    texts = validate_texts(texts, field=field)
    store = get_store()
    return store.model_name, store.dim, store.encode(texts)


def encode_with_usage(*, texts: Sequence[Any], field: str = "texts") -> tuple[str, np.ndarray, int]:
    """`encode` plus the tokens the encoder read: OpenAI's /v1/embeddings reports them as usage."""
    model, _dim, vectors = encode(texts=texts, field=field)
    encoder = get_store().encoder
    tokens = encoder.count_tokens(list(texts)) if encoder is not None else 0
    return model, vectors, tokens
