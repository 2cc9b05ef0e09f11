"""Vectors kept in the database, the change log, and bringing an index up to date from them without encoding.

The database is the truth; each process's FAISS index, and its keyword index beside it, follow it:
- every indexed row keeps its vector (`Document.vector`, float32 bytes, with the model that made it);
- every write logs the rows it added or removed (`IndexChange`) in its own transaction
  (`document_add`, and a `post_delete` receiver for removals, cascades included);
- `index_sync()` reads the changes after the index's cursor and, for each document named, makes
  the index match the database's current state: vectors read from the database are added, those
  of rows that are gone are removed. It runs after every write of this process and, in servers,
  every EMBEDDINGS_SYNC_SECONDS on a background thread, so a document added or deleted through
  one worker is found (or gone) on every other within EMBEDDINGS_SYNC_SECONDS plus one catch-up:
  the documented bound is 2 s with the default 0.5 s.

Applying the state rather than the logged kind makes a catch-up idempotent and order-free: changes
of one document are causally ordered anyway, a hole filled late (embeddings/cursor.py) may come
after newer changes, and a snapshot may hold vectors newer than its mark.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.db import transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from embeddings import selectors
from embeddings.models import Document, IndexChange
from embeddings.store import EmbeddingStore

logger = logging.getLogger(__name__)

# Rows encoded per step while filling in vectors: bounds memory, feeds the progress bar.
ENCODE_BATCH = 256
# Changes read per query while catching up, and document ids per `IN (...)`.
CHANGES_PAGE = 5000
IDS_PER_QUERY = 500
# After reading every vector at once (a rebuild, a full reconcile), the cursor restarts this many
# changes before the newest one seen, so transactions that had taken their ids but not yet
# committed are still read when they do (replaying the others is harmless).
REPLAY_WINDOW = 10_000
# Changes older than this are pruned (the newest is always kept: it anchors the sequence). A
# snapshot whose mark is older than what is left is reconciled with the documents instead.
CHANGES_KEEP = timedelta(days=7)


# --- vectors in the database -----------------------------------------------------------------
def vector_bytes(vector: np.ndarray) -> bytes:
    """A unit vector as stored in `Document.vector`: little-endian float32."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _vector_from(data: bytes | memoryview | None, dim: int) -> np.ndarray | None:
    """The stored vector, or None when there is none of this dimension (a row from before vectors were kept)."""
    if data is None or len(data) != dim * 4:
        return None
    return np.frombuffer(bytes(data), dtype="<f4")


def _has_vector(store: EmbeddingStore) -> Q:
    return Q(vector__isnull=False, vector_model=store.model_name)


def vectors_missing(*, store: EmbeddingStore):
    """Indexed rows without a stored vector of this store's model."""
    return selectors.indexed_documents().exclude(_has_vector(store))


def _vectors_of(store: EmbeddingStore, rows: Iterable[tuple[int, bytes | None]]) -> tuple[list[int], np.ndarray]:
    ids: list[int] = []
    vectors: list[np.ndarray] = []
    for doc_id, data in rows:
        vector = _vector_from(data, store.dim)
        if vector is not None:
            ids.append(doc_id)
            vectors.append(vector)
    if not vectors:
        return [], np.zeros((0, store.dim), dtype=np.float32)
    return ids, np.ascontiguousarray(np.stack(vectors), dtype=np.float32)


def vectors_all(*, store: EmbeddingStore) -> tuple[list[int], np.ndarray]:
    """Every stored vector of this store's model among indexed rows (read in id order, page by page)."""
    ids: list[int] = []
    parts: list[np.ndarray] = []
    last = 0
    while True:
        page = list(
            selectors.indexed_documents()
            .filter(_has_vector(store), id__gt=last)
            .order_by("id")
            .values_list("id", "vector")[:CHANGES_PAGE]
        )
        if not page:
            break
        last = page[-1][0]
        page_ids, page_vectors = _vectors_of(store, page)
        ids.extend(page_ids)
        parts.append(page_vectors)
    return ids, (np.concatenate(parts) if parts else np.zeros((0, store.dim), dtype=np.float32))


@contextmanager
def _fill_lock(folder: Path | None) -> Iterator[None]:
    """Processes sharing an index folder fill in vectors one at a time: the others then find nothing left to encode."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".vectors.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def vectors_fill(
    *, store: EmbeddingStore, reencode: bool = False, progress: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """Store a vector for every indexed row lacking one (every row with `reencode`); returns (copied, encoded).

    A row whose vector is in this store's index (a snapshot saved before vectors were kept) gets
    that one copied; the others are encoded, ENCODE_BATCH at a time. Each batch is stored and
    logged as added in one transaction, so other processes pick the rows up. With `reencode`
    one `reload` change is logged at the end instead.
    """
    copied = encoded = 0
    with _fill_lock(store.folder):
        rows = selectors.indexed_documents() if reencode else vectors_missing(store=store)
        last = 0
        while True:
            batch = list(rows.filter(id__gt=last).order_by("id").values_list("id", "text")[:ENCODE_BATCH])
            if not batch:
                break
            last = batch[-1][0]
            texts = dict(batch)
            vectors: dict[int, np.ndarray] = {}
            if not reencode:
                found, rows_from_index = store.vectors(texts)
                vectors.update(zip(found, rows_from_index, strict=True))
            to_encode = [doc_id for doc_id in texts if doc_id not in vectors]
            if to_encode:
                vectors.update(zip(to_encode, store.encode([texts[i] for i in to_encode]), strict=True))
            with transaction.atomic():
                for doc_id, vector in vectors.items():
                    Document.objects.filter(id=doc_id).update(
                        vector=vector_bytes(vector), vector_model=store.model_name
                    )
                if not reencode:
                    change_log(kind=IndexChange.Kind.ADD, document_ids=vectors)
            copied += len(vectors) - len(to_encode)
            encoded += len(to_encode)
            if progress:
                progress(len(batch))
        if reencode:
            change_log(kind=IndexChange.Kind.RELOAD, document_ids=[None])
    if copied or encoded:
        logger.info(
            "stored vectors of %d documents: %d copied from the index, %d encoded", copied + encoded, copied, encoded
        )
    return copied, encoded


# --- the change log ----------------------------------------------------------------------------
def change_log(*, kind: str, document_ids: Iterable[int | None]) -> None:
    """Log that these rows' vectors were added or removed (call inside the transaction that does it)."""
    IndexChange.objects.bulk_create(
        [IndexChange(kind=kind, document_id=doc_id) for doc_id in document_ids], batch_size=1000
    )


def change_latest_id() -> int:
    return IndexChange.objects.aggregate(latest=Max("id"))["latest"] or 0


def change_log_covers(mark: int) -> bool:
    """Whether every change after `mark` is still in the log (none pruned, and the mark is of this database)."""
    bounds = IndexChange.objects.aggregate(oldest=Min("id"), latest=Max("id"))
    if bounds["latest"] is None:
        return mark == 0
    return bounds["oldest"] - 1 <= mark <= bounds["latest"]


def change_prune(*, keep: timedelta = CHANGES_KEEP) -> int:
    """Delete changes older than `keep`, never the newest; returns how many went."""
    latest = change_latest_id()
    deleted, _ = IndexChange.objects.filter(created__lt=timezone.now() - keep, id__lt=latest).delete()
    return deleted


# --- catching up -------------------------------------------------------------------------------
def _apply_state(store: EmbeddingStore, doc_ids: set[int]) -> tuple[int, int]:
    """Make the index (and the keyword index) match the database for these documents; returns (added, removed)."""
    added = removed = 0
    ordered = sorted(doc_ids)
    for start in range(0, len(ordered), IDS_PER_QUERY):
        chunk = ordered[start : start + IDS_PER_QUERY]
        found = selectors.indexed_documents().filter(id__in=chunk).values_list("id", "vector", "text")
        rows = {doc_id: (data, text) for doc_id, data, text in found}
        present = store.present(chunk)
        gone = [doc_id for doc_id in present if doc_id not in rows]
        # A row without a stored vector stays as the index has it: vectors_fill logs it once stored.
        ids, vectors = _vectors_of(
            store,
            ((doc_id, data) for doc_id, (data, _text) in rows.items() if doc_id not in present),
        )
        if gone:
            removed += store.remove(gone)
        if ids:
            store.add(ids, vectors)
            added += len(ids)
        _apply_keywords(store, chunk, {doc_id: text for doc_id, (_data, text) in rows.items()})
    return added, removed


def _apply_keywords(store: EmbeddingStore, doc_ids: list[int], texts: dict[int, str]) -> None:
    """The keyword index's side of `_apply_state`: rows gone are forgotten, rows it lacks added (no vector needed)."""
    keywords = store.keywords
    known = keywords.present(doc_ids)
    gone = [doc_id for doc_id in known if doc_id not in texts]
    if gone:
        keywords.remove(gone)
    new = [doc_id for doc_id in texts if doc_id not in known]
    if new:
        keywords.add(new, [texts[doc_id] for doc_id in new])


def texts_all() -> tuple[list[int], list[str]]:
    """Every indexed row's id and text, in id order, read page by page (what the keyword index holds)."""
    ids: list[int] = []
    texts: list[str] = []
    last = 0
    while True:
        page = list(
            selectors.indexed_documents().filter(id__gt=last).order_by("id").values_list("id", "text")[:CHANGES_PAGE]
        )
        if not page:
            break
        last = page[-1][0]
        for doc_id, text in page:
            ids.append(doc_id)
            texts.append(text)
    return ids, texts


def keywords_reload(*, store: EmbeddingStore) -> int:
    """Replace the keyword index with every indexed row's text (call with the cursor lock held); returns the count."""
    ids, texts = texts_all()
    store.keywords.replace_all(ids, texts)
    return len(ids)


def index_reload(*, store: EmbeddingStore) -> int:
    """Replace the index with every vector stored in the database (no encoding); returns the count.

    The cursor restarts REPLAY_WINDOW changes before the newest seen before reading, so writes in
    flight meanwhile are caught up by the next sync.
    """
    with store.cursor.lock:
        latest = change_latest_id()
        oldest = IndexChange.objects.aggregate(oldest=Min("id"))["oldest"] or 1
        ids, vectors = vectors_all(store=store)
        store.replace_all(ids, vectors)
        keywords_reload(store=store)
        store.cursor.reset(max(latest - REPLAY_WINDOW, oldest - 1, 0))
    return len(ids)


def index_reconcile_ids(*, store: EmbeddingStore) -> tuple[int, int]:
    """Make the index hold exactly the stored vectors of the database's indexed rows, by id; returns (added, removed).

    For a snapshot the change log cannot bring up to date (saved before it existed, or older than
    what is left of it). Reads ids, and vectors only of rows the index lacks.
    """
    with store.cursor.lock:
        latest = change_latest_id()
        oldest = IndexChange.objects.aggregate(oldest=Min("id"))["oldest"] or 1
        in_db = set(selectors.indexed_documents().values_list("id", flat=True))
        in_index = store.ids()
        extra = in_index - in_db
        removed = store.remove(extra) if extra else 0
        added = 0
        missing = sorted(in_db - in_index)
        for start in range(0, len(missing), IDS_PER_QUERY):
            rows = Document.objects.filter(_has_vector(store), id__in=missing[start : start + IDS_PER_QUERY])
            ids, vectors = _vectors_of(store, rows.values_list("id", "vector"))
            if ids:
                store.add(ids, vectors)
                added += len(ids)
        _reconcile_keywords(store, in_db)
        store.cursor.reset(max(latest - REPLAY_WINDOW, oldest - 1, 0))
    return added, removed


def _reconcile_keywords(store: EmbeddingStore, in_db: set[int]) -> None:
    """The keyword index's side of `index_reconcile_ids`: exactly the rows in `in_db`, compared by id."""
    keywords = store.keywords
    held = keywords.ids()
    if held - in_db:
        keywords.remove(held - in_db)
    missing = sorted(in_db - held)
    for start in range(0, len(missing), IDS_PER_QUERY):
        rows = selectors.indexed_documents().filter(id__in=missing[start : start + IDS_PER_QUERY])
        page = list(rows.values_list("id", "text"))
        keywords.add([doc_id for doc_id, _ in page], [text for _, text in page])


def index_sync(*, store: EmbeddingStore) -> tuple[int, int]:
    """Apply every change logged since the index's cursor; returns (added, removed). Never encodes."""
    cursor = store.cursor
    added = removed = 0
    with cursor.lock:
        after, gaps = cursor.wanted()
        pages: list[list[tuple[int, str, int | None]]] = []
        for start in range(0, len(gaps), IDS_PER_QUERY):
            found = IndexChange.objects.filter(id__in=gaps[start : start + IDS_PER_QUERY])
            pages.append(list(found.values_list("id", "kind", "document_id")))
        while True:
            page = list(
                IndexChange.objects.filter(id__gt=after)
                .order_by("id")
                .values_list("id", "kind", "document_id")[:CHANGES_PAGE]
            )
            pages.append(page)
            if len(page) < CHANGES_PAGE:
                break
            after = page[-1][0]
        changes = [change for page in pages for change in page]
        if not changes:
            cursor.advance([])  # ages out holes that never filled
            return 0, 0
        if any(kind == IndexChange.Kind.RELOAD for _, kind, _ in changes):
            # Every vector was re-encoded elsewhere: take them all (the ids here are in the index already).
            ids, vectors = vectors_all(store=store)
            before = len(store)
            store.replace_all(ids, vectors)
            added, removed = len(ids), before
        else:
            added, removed = _apply_state(store, {doc_id for _, _, doc_id in changes if doc_id is not None})
        # Only now, with the index changed: a snapshot taken meanwhile records the older mark.
        expired = cursor.advance(change_id for change_id, _, _ in changes)
        if expired:
            logger.info("index changes %s never committed (rolled back); no longer waiting for them", expired[:10])
    return added, removed


class Follower:
    """The background catch-up of a server process: `step()` every EMBEDDINGS_SYNC_SECONDS, prune hourly.

    `error` says why the last step failed ("" when it worked): /readyz shows it.
    """

    PRUNE_EVERY_SECONDS = 3600.0

    def __init__(self, current_store: Callable[[], EmbeddingStore | None]):
        self._current_store = current_store
        self._pruned_at = time.monotonic()
        self.error = ""

    def step(self) -> None:
        from django.db import DatabaseError

        store = self._current_store()
        if store is None:  # not loaded yet: the load catches up itself
            return
        try:
            added, removed = index_sync(store=store)
            if time.monotonic() - self._pruned_at > self.PRUNE_EVERY_SECONDS:
                self._pruned_at = time.monotonic()
                change_prune()
        except DatabaseError as exc:
            # Logged once per outage, not every half second; the caller closes the broken connection.
            if not self.error:
                logger.warning("catching up the embedding index failed (retrying): %s", exc)
            self.error = f"catching up with the database failed: {exc}"
            return
        if self.error:
            logger.info("catching up the embedding index works again")
        self.error = ""
        if added or removed:
            logger.debug("embedding index caught up: %d vectors added, %d removed", added, removed)
