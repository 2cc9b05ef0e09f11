"""The embedding store: a sentence-transformers encoder and a FAISS index keyed by document ids.

Plain Python (no Django imports): the caller passes the encoder folder, the index type and
the folder the index is saved in, so tests and benchmarks use it without a server.

- Vectors are L2-normalised and compared by inner product, so scores are cosine similarities.
- The index is a FAISS `IndexIDMap2` whose ids are the documents' database ids: vectors can
  be removed and looked up by id, and document text stays in the database (never pickled).
- Thread safety: FAISS does not support concurrent writes, nor reads during a write. One
  readers-writer lock guards the index: searches share it, add/remove/swap take it alone,
  so a reader never sees a half-written index.
- `save()` writes the serialised index under a name of its own (`index-<checksum>.faiss`), then
  the JSON manifest that names it; each atomically and durably (temporary file in the same
  folder, fsync, os.replace, fsync the folder). Replacing the manifest is the one moment the
  new index takes over, so a save that crashes or runs out of disk at any point leaves the
  previous manifest naming the previous, intact index file. Files no manifest names (left by a
  killed save) are removed by the next save. `load()` verifies the manifest (model, dimension,
  index type, count, checksum) and refuses anything that does not match with `IndexMismatch` /
  `IndexCorrupt`, so the caller rebuilds instead of serving wrong.
- Beside the index, `keywords` (embeddings/keyword.py) holds the same rows' text for BM25; the
  same catch-up keeps both in step, and it is rebuilt from the database rather than saved.
- The store keeps a `ChangeCursor`: how far its index has followed the caller's change feed. A
  save records the cursor's safe mark in the manifest (`changes_through`), read under the same
  lock as the index bytes and never ahead of them, so a load resumes from there.
- Several processes may save into one folder (workers sharing a volume): the file lock serialises
  savers and their clean-up, and each manifest names a complete index with its own mark, so
  whichever save lands last is a consistent snapshot. A loader that finds the file its manifest
  named already replaced by a newer save reads the newer manifest again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embeddings.cursor import ChangeCursor
from embeddings.keyword import KeywordIndex
from llmsite.durable import fsync_path

INDEX_TYPES = ("flat", "hnsw")
INDEX_FILE = "index.faiss"  # the index of a manifest that names none (saved before index files had their own names)
MANIFEST_FILE = "index.json"
MANIFEST_VERSION = 1
# The only index files a manifest may name (never a path): loading reads nothing outside the folder.
INDEX_FILE_PATTERN = re.compile(r"^index(-[0-9a-f]{16})?\.faiss$")
# Below this many allowed ids a filtered search scores them exactly (reconstruct + matmul):
# cheaper than a selector walk, and HNSW recall degrades under very selective filters.
EXACT_FILTER_LIMIT = 4096
# A loader re-reads the manifest this many times when savers in other processes keep replacing its file.
LOAD_ATTEMPTS = 5


class StoreError(Exception):
    """The index on disk cannot be used; the message says why."""


class IndexMissing(StoreError):
    """No saved index (or no manifest) in the folder."""


class IndexCorrupt(StoreError):
    """The saved index is truncated, unreadable or fails its checksum."""


class IndexMismatch(StoreError):
    """The saved index was built for another model, dimension or index type."""


class Encoder:
    """A sentence-transformers model from a local folder; returns normalised float32 vectors."""

    def __init__(self, folder: str | Path, *, name: str | None = None, device: str = "cpu", batch_size: int = 64):
        # Heavy import here: importing the store (e.g. for its errors) must not pay for torch.
        from sentence_transformers import SentenceTransformer

        self.folder = Path(folder)
        self.name = name or self.folder.name
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(self.folder), device=device, local_files_only=True)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise StoreError(f"{self.folder} does not declare its embedding dimension")
        self.dim = int(dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, dim) float32 C-contiguous array of unit vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the encoder reads for `texts` (cut at its maximum sequence length, as encoding does)."""
        limit = self.model.get_max_seq_length() or None
        total = 0
        for text in texts:
            ids = self.model.tokenizer(text, add_special_tokens=True, truncation=limit is not None, max_length=limit)
            total += len(ids["input_ids"])
        return total

    @property
    def max_tokens(self) -> int | None:
        """The longest input the encoder reads, special tokens included; longer texts are cut (None: no limit)."""
        return self.model.get_max_seq_length() or None

    def count_text_tokens(self, text: str) -> int:
        """Tokens of `text` alone (no special tokens, not cut): what chunking measures pieces with."""
        return len(self.model.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


class _RWLock:
    """Many readers or one writer; a waiting writer blocks new readers so it is not starved."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass(frozen=True)
class Hit:
    id: int
    score: float


TEMP_SUFFIX = ".tmp"


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a crash leaves either the old file or the new one, never half.

    The data goes to a hidden temporary file beside `path` first (removed when writing fails,
    e.g. on a full disk; left behind only by a killed process).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


class EmbeddingStore:
    """Encoder + FAISS index keyed by document id; safe to share between threads."""

    def __init__(
        self,
        *,
        model_name: str,
        dim: int,
        encoder: Encoder | None = None,
        index_type: str = "flat",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 80,
        hnsw_ef_search: int = 64,
        folder: str | Path | None = None,
        faiss_threads: int | None = 1,
    ):
        if index_type not in INDEX_TYPES:
            raise ValueError(f"index_type must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}")
        if encoder is not None and encoder.dim != dim:
            raise ValueError(f"the encoder makes {encoder.dim}-dimensional vectors, not {dim}")
        self.model_name = model_name
        self.dim = dim
        self.encoder = encoder
        self.index_type = index_type
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.hnsw_ef_search = hnsw_ef_search
        self.folder = Path(folder) if folder is not None else None
        if faiss_threads is not None:
            # Process-wide. Searches here are one query per request, run side by side from request
            # threads (FAISS releases the GIL); an OpenMP team per call only adds start-up and spin
            # costs (measured: 8 ms instead of 0.3 ms per search on a busy 2-core machine).
            faiss.omp_set_num_threads(faiss_threads)
        self._lock = _RWLock()
        self._index = self._new_index()
        # HNSW cannot remove vectors: removed ids are hidden from searches (tombstones) and
        # dropped for real when the graph is rebuilt (compaction, and always before a save).
        self._tombstones: set[int] = set()
        self.cursor = ChangeCursor()
        # The same rows' text for keyword search: not saved with the index, filled from the
        # database when the index loads and kept in step by the same change log.
        self.keywords = KeywordIndex()

    @classmethod
    def from_encoder(cls, encoder: Encoder, **kwargs: Any) -> EmbeddingStore:
        return cls(model_name=encoder.name, dim=encoder.dim, encoder=encoder, **kwargs)

    # --- building blocks ------------------------------------------------------------------
    def _new_index(self) -> faiss.IndexIDMap2:
        if self.index_type == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.hnsw_ef_construction
            inner.hnsw.efSearch = self.hnsw_ef_search
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)

    def _check_vectors(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        return vectors

    def _ids_in(self, index: faiss.IndexIDMap2) -> np.ndarray:
        return faiss.vector_to_array(index.id_map).astype(np.int64)

    # --- encoding -------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for `texts` (no index lock: encoding never touches the index)."""
        if self.encoder is None:
            raise StoreError("this store has no encoder; pass vectors instead of texts")
        return self.encoder.encode(texts)

    # --- writes ---------------------------------------------------------------------------
    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add (or replace) the vectors for `ids`."""
        vectors = self._check_vectors(vectors)
        id_array = np.asarray(ids, dtype=np.int64)
        if len(id_array) != len(vectors):
            raise ValueError(f"{len(id_array)} ids for {len(vectors)} vectors")
        if len(set(id_array.tolist())) != len(id_array):
            raise ValueError("ids must be unique")
        if not len(id_array):
            return
        with self._lock.write():
            present = self._present(id_array)
            if present:
                self._remove_locked(present)
            if self._tombstones.intersection(id_array.tolist()):
                # A tombstoned id is still in the HNSW graph: drop it for real before re-adding.
                self._compact_locked()
            self._index.add_with_ids(vectors, id_array)

    def add_texts(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        self.add(ids, self.encode(texts))

    def remove(self, ids: Iterable[int]) -> int:
        """Remove the vectors for `ids`; returns how many were present."""
        wanted = [int(i) for i in ids]
        with self._lock.write():
            present = self._present(np.asarray(wanted, dtype=np.int64))
            self._remove_locked(present)
            if self._tombstones and len(self._tombstones) * 10 > self._index.ntotal:
                self._compact_locked()
        return len(present)

    def present(self, ids: Iterable[int]) -> set[int]:
        """Those of `ids` that have a live vector."""
        wanted = np.fromiter((int(i) for i in ids), dtype=np.int64)
        with self._lock.read():
            return set(self._present(wanted))

    def vectors(self, ids: Iterable[int]) -> tuple[list[int], np.ndarray]:
        """The live vectors of those of `ids` in the index: (their ids, an (n, dim) array)."""
        wanted = np.fromiter((int(i) for i in ids), dtype=np.int64)
        with self._lock.read():
            found = self._present(wanted)
            if not found:
                return [], np.zeros((0, self.dim), dtype=np.float32)
            rows = self._index.reconstruct_batch(np.asarray(found, dtype=np.int64))
        return found, np.ascontiguousarray(rows, dtype=np.float32)

    def _present(self, ids: np.ndarray) -> list[int]:
        if not len(ids) or not self._index.ntotal:
            return []
        known = np.isin(ids, self._ids_in(self._index))
        return [int(i) for i in ids[known] if int(i) not in self._tombstones]

    def _remove_locked(self, ids: list[int]) -> None:
        if not ids:
            return
        if self.index_type == "hnsw":
            self._tombstones.update(ids)
        else:
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def _compact_locked(self) -> None:
        """Rebuild the index without its tombstoned ids (HNSW only has them)."""
        if not self._tombstones:
            return
        ids = self._ids_in(self._index)
        keep = ids[~np.isin(ids, np.fromiter(self._tombstones, dtype=np.int64))]
        vectors = self._index.reconstruct_batch(keep) if len(keep) else np.zeros((0, self.dim), np.float32)
        fresh = self._new_index()
        if len(keep):
            fresh.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), keep)
        self._index = fresh
        self._tombstones = set()

    def replace_all(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Swap in a new index holding exactly these vectors (built first, swapped under the lock)."""
        vectors = self._check_vectors(vectors)
        id_array = np.asarray(ids, dtype=np.int64)
        fresh = self._new_index()
        if len(id_array):
            fresh.add_with_ids(vectors, id_array)
        with self._lock.write():
            self._index = fresh
            self._tombstones = set()

    def clear(self) -> None:
        self.replace_all([], np.zeros((0, self.dim), dtype=np.float32))

    # --- reads ----------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock.read():
            return int(self._index.ntotal) - len(self._tombstones)

    def ids(self) -> set[int]:
        """Every id with a live vector."""
        with self._lock.read():
            return set(self._ids_in(self._index).tolist()) - self._tombstones

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, int) and doc_id in self.ids()

    def search(self, query: np.ndarray, k: int, *, allowed_ids: Iterable[int] | None = None) -> list[list[Hit]]:
        """The `k` best ids (highest cosine first) for each query row, optionally among `allowed_ids` only."""
        queries = self._check_vectors(np.atleast_2d(query))
        if k < 1:
            raise ValueError("k must be at least 1")
        allowed = None if allowed_ids is None else np.unique(np.fromiter(allowed_ids, dtype=np.int64))
        with self._lock.read():
            if allowed is not None and self._tombstones:
                allowed = allowed[~np.isin(allowed, np.fromiter(self._tombstones, dtype=np.int64))]
            if allowed is not None and len(allowed) <= EXACT_FILTER_LIMIT:
                return self._search_exact(queries, k, allowed)
            return self._search_index(queries, k, allowed)

    def _search_exact(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> list[list[Hit]]:
        if not len(allowed) or not self._index.ntotal:
            return [[] for _ in queries]
        allowed = allowed[np.isin(allowed, self._ids_in(self._index))]
        if not len(allowed):
            return [[] for _ in queries]
        vectors = self._index.reconstruct_batch(allowed)
        scores = queries @ vectors.T
        k = min(k, len(allowed))
        results = []
        for row in scores:
            top = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
            top = top[np.argsort(-row[top], kind="stable")]
            results.append([Hit(int(allowed[i]), float(row[i])) for i in top])
        return results

    def _search_index(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> list[list[Hit]]:
        ntotal = int(self._index.ntotal)
        if not ntotal:
            return [[] for _ in queries]
        selector = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed)
        elif self._tombstones:
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.fromiter(self._tombstones, dtype=np.int64)))
        if self.index_type == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.hnsw_ef_search, k)
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        k_eff = min(k, ntotal)
        scores, labels = self._index.search(queries, k_eff, params=params)
        return [
            [Hit(int(i), float(s)) for s, i in zip(srow, lrow, strict=True) if i >= 0]
            for srow, lrow in zip(scores, labels, strict=True)
        ]

    # --- persistence ----------------------------------------------------------------------
    def manifest(self, *, count: int, checksum: str, size: int, changes_through: int = 0) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "file": f"index-{checksum[:16]}.faiss",
            "model": self.model_name,
            "dim": self.dim,
            "index_type": self.index_type,
            "count": count,
            "bytes": size,
            "checksum": f"sha256:{checksum}",
            "faiss": faiss.__version__,
            "changes_through": changes_through,
            "saved_at": time.time(),
        }

    def save(self, folder: str | Path | None = None) -> dict[str, Any]:
        """Write the index, then the manifest naming it, atomically; returns the manifest.

        Raises OSError when the folder cannot take them (a full disk): the previous index and
        manifest are then untouched, and nothing of this save stays on disk.
        """
        target = Path(folder) if folder is not None else self.folder
        if target is None:
            raise StoreError("no folder to save the index in")
        # The write lock: compaction mutates, and serialising must not race an add.
        with self._lock.write():
            # A cursor moves only once its changes are in the index, so the mark read here is never
            # ahead of the vectors serialised with it (at worst behind: replaying is harmless).
            changes_through = self.cursor.safe_mark()
            self._compact_locked()
            data = faiss.serialize_index(self._index).tobytes()
            count = int(self._index.ntotal)
        manifest = self.manifest(
            count=count, checksum=hashlib.sha256(data).hexdigest(), size=len(data), changes_through=changes_through
        )
        target.mkdir(parents=True, exist_ok=True)
        # The file lock keeps savers in other processes out: while it is held, no other save is
        # half-done, so whatever the manifest does not name is a leftover of a killed one.
        with open(target / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                _remove_unnamed(target, keep=_named_file(target))
                try:
                    atomic_write(target / manifest["file"], data)
                    # The commit point: until here the old manifest names the old file, still in place.
                    atomic_write(target / MANIFEST_FILE, json.dumps(manifest, indent=2).encode())
                except BaseException:
                    if _named_file(target) != manifest["file"]:  # not committed: nothing may point at it
                        (target / manifest["file"]).unlink(missing_ok=True)
                    raise
                _remove_unnamed(target, keep=manifest["file"])
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return manifest

    def read_manifest(self, folder: str | Path | None = None) -> dict[str, Any]:
        target = Path(folder) if folder is not None else self.folder
        if target is None:
            raise StoreError("no folder to load the index from")
        path = target / MANIFEST_FILE
        if not path.is_file():
            raise IndexMissing(f"no saved index in {target}")
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IndexCorrupt(f"unreadable manifest {path}: {exc}") from exc
        if not isinstance(manifest, dict):
            raise IndexCorrupt(f"manifest {path} is not a JSON object")
        name = manifest.setdefault("file", INDEX_FILE)
        if not isinstance(name, str) or not INDEX_FILE_PATTERN.match(name):
            raise IndexCorrupt(f"manifest {path} names {name!r}, not an index file of this folder")
        return manifest

    def _read_index(self, target: Path) -> tuple[dict[str, Any], bytes]:
        """The manifest and the bytes of the index file it names."""
        for _ in range(LOAD_ATTEMPTS):
            manifest = self.read_manifest(target)
            try:
                return manifest, (target / manifest["file"]).read_bytes()
            except FileNotFoundError:
                # Another process saved (and removed the file this manifest named) meanwhile: read
                # its manifest. A file once opened reads whole even if a saver removes it.
                continue
        raise IndexCorrupt(f"the manifest names {manifest['file']}, which is missing")

    def load(self, folder: str | Path | None = None) -> dict[str, Any]:
        """Replace the in-memory index with the saved one after verifying it; returns the manifest."""
        target = Path(folder) if folder is not None else self.folder
        if target is None:
            raise StoreError("no folder to load the index from")
        manifest, data = self._read_index(target)
        name = manifest["file"]
        expected = {"model": self.model_name, "dim": self.dim, "index_type": self.index_type}
        for key, value in expected.items():
            if manifest.get(key) != value:
                raise IndexMismatch(f"saved index has {key}={manifest.get(key)!r}, this store needs {value!r}")
        if len(data) != manifest.get("bytes"):
            raise IndexCorrupt(f"{name} has {len(data)} bytes, the manifest says {manifest.get('bytes')}")
        if f"sha256:{hashlib.sha256(data).hexdigest()}" != manifest.get("checksum"):
            raise IndexCorrupt(f"{name} fails its checksum")
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexCorrupt(f"FAISS cannot read {name}: {exc}") from exc
        if not isinstance(index, faiss.IndexIDMap2) or index.d != self.dim:
            raise IndexMismatch(f"{name} is not a {self.dim}-dimensional IndexIDMap2")
        changes_through = manifest.get("changes_through", 0)
        if isinstance(changes_through, bool) or not isinstance(changes_through, int) or changes_through < 0:
            raise IndexCorrupt(f"the manifest's changes_through is {changes_through!r}, not a change id")
        if int(index.ntotal) != manifest.get("count"):
            raise IndexCorrupt(f"{name} holds {index.ntotal} vectors, the manifest says {manifest.get('count')}")
        if self.index_type == "hnsw":
            faiss.downcast_index(index.index).hnsw.efSearch = self.hnsw_ef_search
        with self._lock.write():
            self._index = index
            self._tombstones = set()
            self.cursor.reset(changes_through)
        return manifest


def _named_file(folder: Path) -> str | None:
    """The index file the folder's manifest names; None when there is no readable manifest."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    name = manifest.get("file", INDEX_FILE) if isinstance(manifest, dict) else None
    return name if isinstance(name, str) and INDEX_FILE_PATTERN.match(name) else None


def _remove_unnamed(folder: Path, *, keep: str | None) -> None:
    """Remove temporary files and index files other than `keep` (call with the save lock held).

    Without a readable manifest (keep=None) only temporary files go: an index file may be all
    that is left to look at.
    """
    for path in folder.iterdir():
        name = path.name
        leftover = name.startswith(".") and name.endswith(TEMP_SUFFIX)
        unnamed = keep is not None and name != keep and INDEX_FILE_PATTERN.match(name) is not None
        if leftover or unnamed:
            path.unlink(missing_ok=True)
