"""Embeddings fixtures: the real MiniLM loaded once per session, a fresh index folder per test."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.cache import caches

from embeddings import services
from embeddings.store import EmbeddingStore


@pytest.fixture(scope="session")
def encoder():
    # Cached by services.get_encoder, so every store the tests build reuses this one model.
    return services.get_encoder("all-MiniLM-L6-v2")


@pytest.fixture(autouse=True)
def index_dir(tmp_path, settings):
    """Each test gets its own EMBEDDINGS_DIR and a store built from scratch on first use."""
    folder = tmp_path / "embeddings"
    settings.EMBEDDINGS_DIR = folder  # setting_changed resets the process-wide store
    caches["default"].clear()
    yield folder
    services.reset_store()


@pytest.fixture
def store(encoder, db):
    """The process-wide store (real MiniLM, flat index) as the API uses it."""
    return services.get_store()


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def tiny_store(tmp_path):
    """A store of 8-dimensional synthetic vectors, for tests where the encoder is not the point."""

    def make(index_type: str = "flat") -> EmbeddingStore:
        return EmbeddingStore(model_name="tiny", dim=8, index_type=index_type, folder=tmp_path / "tiny")

    return make
