"""Keyword search (BM25, through bm25s) over the indexed rows' text, and reciprocal rank fusion with vector search.

Plain Python (no Django imports), like the FAISS store beside it: tests and the retrieval
benchmark (bench/retrieval.py) use it without a server.

- Meaning (vectors) misses exact strings a user types: a part number, an error code, a name the
  encoder has never seen. BM25 finds those; fusing both rankings keeps the best of each
  (bench/results/retrieval.md measures it).
- The index keeps each row's tokens by database id and follows the same change log as the FAISS
  index (embeddings/services/sync.py), so it never answers with rows that are gone. bm25s builds
  its matrix in one go (no incremental add): a change marks the index stale and the next search
  rebuilds it, off the lock that writers take, and swaps it in.
- Scores are computed over every row, then masked to the ids the caller may see: the filter is
  exact whatever its size.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

# Words of two characters or more and numbers of any length: "XK-4471" gives "xk" and "4471", "E1042"
# stays whole, and "vault 2" keeps its "2" (a lone letter says nothing; a lone digit names a page, room, vault).
TOKEN_PATTERN = re.compile(r"\w\w+|\d", re.UNICODE)
STOPWORDS = frozenset(STOPWORDS_EN)
# Reciprocal rank fusion's constant (Cormack et al. 2009): large enough that a first place in one
# ranking does not drown out agreement between both.
RRF_K = 60
# Hybrid search fuses this many candidates from each ranking (at least; top_k * 4 when larger): a
# passage ranked 15th by meaning and 2nd by words must still be seen by the fusion.
HYBRID_CANDIDATES = 20


def hybrid_candidates(top_k: int) -> int:
    """How many hits each ranking hands to the fusion for a search that wants `top_k`."""
    return max(HYBRID_CANDIDATES, top_k * 4)


def tokenize(text: str) -> list[str]:
    """Lower-cased words and numbers of a text, English stop words left out."""
    return [t for t in TOKEN_PATTERN.findall(text.lower()) if t not in STOPWORDS]


@dataclass(frozen=True)
class KeywordHit:
    id: int
    score: float


class KeywordIndex:
    """BM25 over texts keyed by database id; safe to share between threads."""

    def __init__(self, *, k1: float = 1.5, b: float = 0.75):
        self.k1 = k1
        self.b = b
        self._lock = threading.Lock()  # guards _tokens and _version
        self._build_lock = threading.Lock()  # one rebuild at a time
        self._tokens: dict[int, list[str]] = {}
        self._version = 0
        # The built matrix and the ids of its rows (sorted), and the version it was built from.
        self._built: tuple[int, np.ndarray, bm25s.BM25 | None] = (-1, np.zeros(0, dtype=np.int64), None)

    # --- writes ---------------------------------------------------------------------------
    def add(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        """Add (or replace) the texts of `ids`."""
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        tokens = [tokenize(text) for text in texts]
        with self._lock:
            for doc_id, words in zip(ids, tokens, strict=True):
                self._tokens[int(doc_id)] = words
            self._version += 1

    def remove(self, ids: Iterable[int]) -> int:
        """Forget the texts of `ids`; returns how many were present."""
        with self._lock:
            removed = sum(self._tokens.pop(int(doc_id), None) is not None for doc_id in ids)
            if removed:
                self._version += 1
        return removed

    def replace_all(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        """Hold exactly these texts from now on."""
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        tokens = {int(doc_id): tokenize(text) for doc_id, text in zip(ids, texts, strict=True)}
        with self._lock:
            self._tokens = tokens
            self._version += 1

    # --- reads ----------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._tokens)

    def present(self, ids: Iterable[int]) -> set[int]:
        """Those of `ids` whose text is indexed."""
        with self._lock:
            return {int(doc_id) for doc_id in ids if int(doc_id) in self._tokens}

    def _current(self) -> tuple[np.ndarray, bm25s.BM25 | None]:
        """The matrix for the texts held now, rebuilt first when a write came since the last build."""
        version, ids, retriever = self._built
        if version == self._version:
            return ids, retriever
        with self._build_lock:
            with self._lock:
                version = self._version
                if self._built[0] == version:
                    return self._built[1], self._built[2]
                order = sorted(self._tokens)
                corpus = [self._tokens[doc_id] for doc_id in order]
            ids = np.asarray(order, dtype=np.int64)
            retriever = None
            if order:
                retriever = bm25s.BM25(k1=self.k1, b=self.b)
                retriever.index(corpus, show_progress=False)
            self._built = (version, ids, retriever)
            return ids, retriever

    def search(self, query: str, k: int, *, allowed_ids: Iterable[int] | None = None) -> list[KeywordHit]:
        """The `k` rows scoring highest for `query` (best first, ties by id), only rows sharing a word with it.

        With `allowed_ids`, only among those.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        words = tokenize(query)
        if not words:
            return []
        ids, retriever = self._current()
        if retriever is None:
            return []
        scores = np.asarray(retriever.get_scores(words), dtype=np.float64)
        if allowed_ids is not None:
            allowed = np.fromiter((int(i) for i in allowed_ids), dtype=np.int64)
            scores = np.where(np.isin(ids, allowed), scores, 0.0)
        matching = np.flatnonzero(scores > 0)
        if not len(matching):
            return []
        # Highest score first; equal scores by id (rows are in id order), so results are deterministic.
        order = matching[np.lexsort((ids[matching], -scores[matching]))][:k]
        return [KeywordHit(int(ids[i]), float(scores[i])) for i in order]


def rrf_fuse(rankings: Sequence[Sequence[int]], *, k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: each id scores the sum of 1 / (k + rank) over the rankings it appears in (rank from 1).

    Returns (id, fused score) best first; equal scores go to the id ranked best in any list, then
    to the earlier ranking (vector first, by the callers' convention), then by id.
    """
    fused: dict[int, float] = {}
    best: dict[int, tuple[int, int]] = {}
    for list_index, ranking in enumerate(rankings):
        for rank, doc_id in enumerate(ranking, 1):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (k + rank)
            place = (rank, list_index)
            if doc_id not in best or place < best[doc_id]:
                best[doc_id] = place
    return sorted(fused.items(), key=lambda item: (-item[1], best[item[0]], item[0]))
