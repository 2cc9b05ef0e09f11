"""The plain-Python store on synthetic vectors: ids, filtering, removal, persistence, threads."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from embeddings.store import INDEX_FILE, MANIFEST_FILE, EmbeddingStore, IndexCorrupt, IndexMismatch, IndexMissing
from embeddings.tests.conftest import unit

RNG = np.random.default_rng(7)


def vectors(n: int, dim: int = 8) -> np.ndarray:
    return unit(RNG.normal(size=(n, dim)))


def index_path(store: EmbeddingStore):
    """The index file the saved manifest names."""
    return store.folder / store.read_manifest()["file"]


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_it_finds_a_vector_by_its_document_id(tiny_store, index_type):
    store = tiny_store(index_type)
    data = vectors(50)
    ids = list(range(1000, 1050))
    store.add(ids, data)
    hits = store.search(data[7], 3)[0]
    assert hits[0].id == 1007
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_it_removes_vectors_from_results(tiny_store, index_type):
    store = tiny_store(index_type)
    data = vectors(20)
    store.add(list(range(1, 21)), data)
    assert store.remove([5, 999]) == 1
    assert 5 not in [h.id for h in store.search(data[4], 20)[0]]
    assert len(store) == 19
    assert 5 not in store.ids()


def test_it_compacts_hnsw_tombstones_and_can_re_add_an_id(tiny_store):
    store = tiny_store("hnsw")
    data = vectors(20)
    store.add(list(range(1, 21)), data)
    store.remove(range(1, 6))  # 25% removed: compacted
    assert store._tombstones == set()
    store.add([3], data[2:3])
    assert store.search(data[2], 1)[0][0].id == 3
    assert len(store) == 16


def test_it_replaces_the_vector_of_an_id_added_twice(tiny_store):
    store = tiny_store()
    data = vectors(2)
    store.add([1], data[:1])
    store.add([1], data[1:])
    assert len(store) == 1
    assert store.search(data[1], 1)[0][0].score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
@pytest.mark.parametrize("n_allowed", [3, 5000])  # exact path and FAISS selector path
def test_it_searches_only_allowed_ids(tiny_store, index_type, n_allowed):
    store = tiny_store(index_type)
    data = vectors(6000)
    store.add(list(range(6000)), data)
    allowed = set(range(0, 6000, 2)[:n_allowed])
    hits = store.search(data[1], 5, allowed_ids=allowed)[0]
    assert hits and all(h.id in allowed for h in hits)
    assert store.search(data[1], 5, allowed_ids=[])[0] == []


def test_it_saves_and_loads_identical_results(tiny_store):
    store = tiny_store("hnsw")
    data = vectors(200)
    store.add(list(range(200)), data)
    manifest = store.save()
    assert manifest["count"] == 200 and manifest["dim"] == 8 and manifest["index_type"] == "hnsw"
    assert manifest["checksum"].startswith("sha256:")

    fresh = tiny_store("hnsw")
    fresh.load()
    assert fresh.search(data[:10], 5) == store.search(data[:10], 5)


def test_it_writes_no_temporary_files_and_no_pickle(tiny_store):
    store = tiny_store()
    store.add([1], vectors(1))
    store.save()
    store.add([2], vectors(1))
    store.save()  # the second save removes the first one's index file
    names = sorted(p.name for p in store.folder.iterdir())
    assert names == [".lock", index_path(store).name, MANIFEST_FILE]
    assert b"pickle" not in index_path(store).read_bytes()[:64]


def test_it_refuses_a_truncated_index(tiny_store):
    store = tiny_store()
    store.add(list(range(10)), vectors(10))
    store.save()
    path = index_path(store)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexCorrupt):
        tiny_store().load()


def test_it_refuses_a_flipped_byte(tiny_store):
    store = tiny_store()
    store.add(list(range(10)), vectors(10))
    store.save()
    path = index_path(store)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="checksum"):
        tiny_store().load()


@pytest.mark.parametrize(("key", "value"), [("model", "other-model"), ("dim", 16), ("index_type", "hnsw")])
def test_it_refuses_an_index_built_for_something_else(tiny_store, key, value):
    store = tiny_store()
    store.add([1], vectors(1))
    store.save()
    path = store.folder / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest[key] = value
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match=key):
        tiny_store().load()


def test_it_loads_an_index_saved_before_index_files_had_their_own_names(tiny_store):
    store = tiny_store()
    data = vectors(5)
    store.add(list(range(5)), data)
    store.save()
    manifest = json.loads((store.folder / MANIFEST_FILE).read_text())
    index_path(store).rename(store.folder / INDEX_FILE)
    del manifest["file"]
    (store.folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    fresh = tiny_store()
    fresh.load()
    assert fresh.search(data[3], 1)[0][0].id == 3
    fresh.save()
    assert not (store.folder / INDEX_FILE).exists()


@pytest.mark.parametrize("name", ["../index.faiss", "/etc/passwd", "index-xyz.faiss", "other.faiss"])
def test_it_refuses_a_manifest_naming_a_file_outside_its_own_index_files(tiny_store, name):
    store = tiny_store()
    store.add([1], vectors(1))
    store.save()
    manifest = json.loads((store.folder / MANIFEST_FILE).read_text())
    manifest["file"] = name
    (store.folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match="not an index file"):
        tiny_store().load()


@pytest.mark.parametrize("fails_at", ["index", "manifest"])
def test_a_save_that_runs_out_of_disk_leaves_the_previous_index(small_disk, fails_at):
    folder = small_disk("32k")
    store = EmbeddingStore(model_name="tiny", dim=8, folder=folder)
    data = vectors(1000)
    store.add([0], data[:1])
    store.save()
    before = sorted(p.name for p in folder.iterdir())
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    # Flat index: 90 bytes + 40 per vector. Fill every free block with the index (the manifest then
    # finds none), or need more blocks than there are.
    count = (free - 90) // 40 if fails_at == "manifest" else 1000
    store.add(list(range(1, count)), data[1:count])
    with pytest.raises(OSError, match="No space left"):
        store.save()
    assert sorted(p.name for p in folder.iterdir()) == before
    fresh = EmbeddingStore(model_name="tiny", dim=8, folder=folder)
    fresh.load()
    assert fresh.ids() == {0}


def test_it_says_when_nothing_was_saved(tiny_store):
    with pytest.raises(IndexMissing):
        tiny_store().load()


def test_it_refuses_vectors_of_the_wrong_shape(tiny_store):
    with pytest.raises(ValueError, match="shape"):
        tiny_store().add([1], np.ones((1, 3), dtype=np.float32))


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_concurrent_adds_removes_and_searches_do_not_crash(tiny_store, index_type):
    store = tiny_store(index_type)
    store.add(list(range(100)), vectors(100))
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(offset: int) -> None:
        try:
            for i in range(40):
                base = 10_000 * offset + i * 5
                store.add(list(range(base, base + 5)), vectors(5))
                store.remove([base])
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        query = vectors(1)
        try:
            while not stop.is_set():
                for hits in store.search(query, 10):
                    assert len({h.id for h in hits}) == len(hits)
                store.search(query, 5, allowed_ids=range(50))
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in (1, 2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert len(store) == 100 + 2 * 40 * 4


def test_it_refuses_an_unknown_index_type():
    with pytest.raises(ValueError, match="index_type"):
        EmbeddingStore(model_name="x", dim=4, index_type="ivf")
