"""Several workers, one database: each index catches up from the stored vectors and the change log, never by encoding.

"Another worker" is a second EmbeddingStore over this test's database without an encoder, so
anything that tried to encode would fail: every vector it gets is read from the database.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
from django.db import OperationalError, connection, transaction

from embeddings import services
from embeddings.cursor import GAP_SPAN, ChangeCursor
from embeddings.models import Collection, Document, IndexChange
from embeddings.services import sync
from embeddings.store import EmbeddingStore

pytestmark = pytest.mark.django_db

DOCS = [
    {"text": "The llmsite staging server is named kestrel-7."},
    {"text": "Bananas are rich in potassium and taste sweet."},
    {"text": "The Eiffel Tower stands in Paris, France."},
]


@pytest.fixture
def other_worker(store, tmp_path):
    """A second process's index over the same database; it has no encoder, so it can only read vectors."""
    return EmbeddingStore(model_name=store.model_name, dim=store.dim, folder=tmp_path / "other-worker")


def search_on(worker: EmbeddingStore, store: EmbeddingStore, query: str, allowed: list[int]) -> list[int]:
    return [hit.id for hit in worker.search(store.encode([query]), 3, allowed_ids=allowed)[0]]


# --- the cursor --------------------------------------------------------------------------------
def test_the_cursor_asks_again_for_a_hole_until_it_fills():
    cursor = ChangeCursor(mark=10)
    cursor.advance([11, 13, 14])  # 12 took its id first but has not committed yet
    assert cursor.wanted() == (14, [12])
    assert cursor.safe_mark() == 11
    cursor.advance([12])
    assert cursor.wanted() == (14, []) and cursor.safe_mark() == 14


def test_the_cursor_does_not_wait_for_ids_far_below_the_newest():
    cursor = ChangeCursor(mark=0)
    cursor.advance([GAP_SPAN + 100])  # a cursor reset far behind a sequence that moved on
    assert len(cursor.gaps) == GAP_SPAN and min(cursor.gaps) == 100


def test_the_cursor_gives_up_on_a_hole_that_never_fills():
    now = [0.0]
    cursor = ChangeCursor(mark=0, gap_timeout=60, clock=lambda: now[0])
    cursor.advance([2])
    now[0] = 59
    assert cursor.advance([]) == [] and cursor.wanted() == (2, [1])
    now[0] = 61
    assert cursor.advance([]) == [1]  # a rolled-back transaction's id
    assert cursor.wanted() == (2, []) and cursor.safe_mark() == 2


# --- two workers ---------------------------------------------------------------------------------
def test_a_document_added_through_one_worker_is_found_by_another(store, other_worker, alice):
    services.index_sync(store=other_worker)
    ids = services.document_add(user=alice, documents=DOCS, collection="notes").ids
    assert other_worker.ids() == set()
    assert services.index_sync(store=other_worker) == (3, 0)
    assert other_worker.ids() == set(ids)
    assert search_on(other_worker, store, "What is the staging server called?", ids)[0] == ids[0]
    # The rows carry their vectors: the other worker's scores are those of the worker that encoded them.
    assert np.allclose(other_worker.vectors([ids[1]])[1], store.vectors([ids[1]])[1])
    assert services.index_sync(store=other_worker) == (0, 0)


def test_a_document_deleted_through_one_worker_is_gone_from_another(store, other_worker, alice):
    ids = services.document_add(user=alice, documents=DOCS, collection="notes").ids
    services.index_sync(store=other_worker)
    services.document_delete(user=alice, document_id=ids[0])
    assert services.index_sync(store=other_worker) == (0, 1)
    assert other_worker.ids() == {ids[1], ids[2]}


def test_chunks_of_a_long_document_follow_their_source(store, other_worker, alice, settings):
    settings.EMBEDDINGS_CHUNK_CHARS = 200
    settings.EMBEDDINGS_CHUNK_OVERLAP = 50
    text = " ".join(f"sentence {i} says little." for i in range(40)) + " The launch code is amber-falcon-42."
    source = services.document_add(user=alice, documents=[{"text": text}]).ids[0]
    chunk_ids = set(Document.objects.filter(source_id=source).values_list("id", flat=True))
    services.index_sync(store=other_worker)
    assert other_worker.ids() == chunk_ids and source not in other_worker.ids()
    services.document_delete(user=alice, document_id=source)
    services.index_sync(store=other_worker)
    assert other_worker.ids() == set()


@pytest.mark.parametrize("what", ["collection", "user"])
def test_a_cascade_from_a_deleted_collection_or_user_is_logged(store, other_worker, alice, bob, what):
    """Deleting a collection (the admin) or a user removes documents without any embeddings service."""
    mine = services.document_add(user=alice, documents=DOCS[:2], collection="notes").ids
    theirs = services.document_add(user=bob, documents=DOCS[2:], collection="notes").ids
    services.index_sync(store=other_worker)
    if what == "collection":
        Collection.objects.get(owner=alice, name="notes").delete()
    else:
        alice.delete()
    assert services.index_sync(store=other_worker) == (0, 2)
    assert services.index_sync(store=store) == (0, 2)
    assert other_worker.ids() == store.ids() == set(theirs)
    assert set(IndexChange.objects.filter(kind="remove").values_list("document_id", flat=True)) == set(mine)


def test_a_change_that_commits_after_a_newer_one_is_not_skipped(store, other_worker, alice):
    """Change ids are taken at insert, but transactions commit in any order (PostgreSQL): 12 may be seen before 11.

    Simulated here with explicit ids, so it runs on every database; the next test does it for
    real with two connections on PostgreSQL.
    """
    services.index_sync(store=other_worker)
    base = sync.change_latest_id()
    collection = services.collection_get_or_create(user=alice, name="notes")
    late, early = (
        Document.objects.create(
            owner=alice,
            collection=collection,
            text=text,
            content_hash=services.content_hash(text),
            vector=sync.vector_bytes(store.encode([text])[0]),
            vector_model=store.model_name,
        )
        for text in ("Owls hunt at night.", "Moles dig tunnels.")
    )
    IndexChange.objects.create(id=base + 2, kind="add", document_id=early.id)  # committed first
    assert services.index_sync(store=other_worker) == (1, 0)
    assert other_worker.cursor.wanted() == (base + 2, [base + 1])
    IndexChange.objects.create(id=base + 1, kind="add", document_id=late.id)  # the older id commits later
    assert services.index_sync(store=other_worker) == (1, 0)
    assert other_worker.ids() == {early.id, late.id}
    assert other_worker.cursor.wanted() == (base + 2, [])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="only PostgreSQL runs two writers at once")
@pytest.mark.django_db(transaction=True)
def test_out_of_order_commits_of_two_connections_are_both_applied(store, other_worker, alice):
    services.index_sync(store=other_worker)
    holding = threading.Event()
    release = threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                services.document_add(user=alice, documents=[DOCS[0]], collection="slow")
                holding.set()  # its change id is taken, its commit waits
                assert release.wait(60)
        finally:
            connection.close()

    # document_add syncs right after its own transaction; inside the outer one here that is before
    # the commit, which is the point: the change stays invisible to other connections meanwhile.
    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert holding.wait(60)
    fast = services.document_add(user=alice, documents=[DOCS[1]], collection="fast").ids
    services.index_sync(store=other_worker)
    assert other_worker.ids() == set(fast)
    assert other_worker.cursor.wanted()[1], "the slow writer's change id is a hole"
    release.set()
    thread.join(60)
    services.index_sync(store=other_worker)
    assert other_worker.ids() == set(Document.objects.values_list("id", flat=True))


def test_the_background_follower_catches_up_and_says_why_when_it_cannot(store, other_worker, alice, monkeypatch):
    follower = sync.Follower(lambda: other_worker)
    ids = services.document_add(user=alice, documents=DOCS, collection="notes").ids
    follower.step()
    assert other_worker.ids() == set(ids) and follower.error == ""

    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(sync, "index_sync", unreachable)
    follower.step()  # logged and kept for /readyz, not raised: the thread goes on
    assert "connection refused" in follower.error
    monkeypatch.undo()
    services.document_delete(user=alice, document_id=ids[0])
    follower.step()
    assert other_worker.ids() == {ids[1], ids[2]} and follower.error == ""


def test_a_follower_of_an_index_not_loaded_yet_does_nothing(db):
    sync.Follower(lambda: None).step()  # the load catches up itself


# --- snapshots and restarts ----------------------------------------------------------------------
def test_a_restart_loads_the_snapshot_and_catches_up_from_the_database(store, alice, settings, index_dir):
    ids = services.document_add(user=alice, documents=DOCS[:2], collection="notes").ids
    manifest = services.index_save()
    # Up to the newest change (below it on PostgreSQL, whose sequence skips ids of rolled-back
    # tests: holes the cursor still waits for, so the snapshot resumes before them).
    assert 0 <= manifest["changes_through"] <= sync.change_latest_id()
    settings.EMBEDDINGS_AUTOSAVE = False
    services.document_delete(user=alice, document_id=ids[0])
    later = services.document_add(user=alice, documents=DOCS[2:], collection="notes").ids
    # A fresh worker without an encoder: the snapshot plus the log, no encoding at all.
    restarted = EmbeddingStore(model_name=store.model_name, dim=store.dim, folder=index_dir)
    result = services.index_load(store=restarted)
    assert (result["origin"], result["added"], result["removed"]) == ("loaded", 1, 1)
    assert restarted.ids() == {ids[1], later[0]}
    assert services.index_sync(store=restarted) == (0, 0)  # nothing left to catch up


def test_a_snapshot_the_log_cannot_cover_is_reconciled_by_id(store, alice, index_dir):
    ids = services.document_add(user=alice, documents=DOCS, collection="notes").ids
    services.index_save()
    IndexChange.objects.all().delete()  # pruned, or a database restored from a backup
    Document.objects.filter(id=ids[0]).delete()  # logged: the log now starts after the mark
    restarted = EmbeddingStore(model_name=store.model_name, dim=store.dim, folder=index_dir)
    result = services.index_load(store=restarted)
    assert (result["origin"], result["added"], result["removed"]) == ("loaded", 0, 1)
    assert restarted.ids() == {ids[1], ids[2]}


def test_rows_from_before_vectors_were_kept_get_them_at_the_first_load(store, alice, index_dir):
    ids = services.document_add(user=alice, documents=DOCS, collection="notes").ids
    expected = dict(zip(*store.vectors(ids), strict=True))
    services.index_save()
    # As the migration leaves an existing database: no vectors; the last row is not in the snapshot either.
    Document.objects.update(vector=None, vector_model="")
    store.remove([ids[2]])
    services.index_save()
    restarted = services.build_store()
    encoded: list[str] = []
    encode = restarted.encode
    restarted.encode = lambda texts: encoded.extend(texts) or encode(texts)
    services.index_load(store=restarted)
    assert encoded == [DOCS[2]["text"]]  # copied from the snapshot where it had them, encoded once otherwise
    assert restarted.ids() == set(ids)
    for doc in Document.objects.filter(id__in=ids):
        assert doc.vector_model == store.model_name
        assert np.allclose(np.frombuffer(bytes(doc.vector), dtype="<f4"), expected[doc.id], atol=1e-5)


def test_two_workers_saving_into_one_folder_leave_one_loadable_snapshot(store, other_worker, alice, index_dir):
    services.document_add(user=alice, documents=DOCS, collection="notes")
    services.index_sync(store=other_worker)
    other_worker.folder = index_dir
    errors: list[BaseException] = []

    def save_many(worker: EmbeddingStore) -> None:
        try:
            for _ in range(20):
                worker.save()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=save_many, args=(w,)) for w in (store, other_worker, store, other_worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    files = sorted(p.name for p in index_dir.iterdir() if not p.name.startswith("."))
    manifest = other_worker.read_manifest()
    assert files == sorted([manifest["file"], "index.json"])
    restarted = EmbeddingStore(model_name=store.model_name, dim=store.dim, folder=index_dir)
    restarted.load()
    assert restarted.ids() == store.ids()


# --- rebuilds ----------------------------------------------------------------------------------
def test_rebuild_reuses_stored_vectors_and_reencode_reloads_every_worker(store, other_worker, alice, monkeypatch):
    ids = services.document_add(user=alice, documents=DOCS, collection="notes").ids
    services.index_sync(store=other_worker)
    encoded: list[str] = []
    encode = store.encode
    monkeypatch.setattr(store, "encode", lambda texts: encoded.extend(texts) or encode(texts))

    assert services.index_rebuild_count() == 0
    assert services.index_rebuild(store=store) == 3
    assert encoded == [] and store.ids() == set(ids)

    # Stored vectors altered, as a changed encoder would leave them: --reencode writes new ones.
    Document.objects.filter(id=ids[0]).update(vector=sync.vector_bytes(np.eye(store.dim, dtype=np.float32)[0]))
    assert services.index_rebuild_count(reencode=True) == 3
    assert services.index_rebuild(store=store, reencode=True) == 3
    assert sorted(encoded) == sorted(d["text"] for d in DOCS)
    assert IndexChange.objects.filter(kind="reload").count() == 1
    # The other worker already had every id; the reload change makes it take the new vectors anyway.
    other_worker.replace_all([ids[0]], np.eye(store.dim, dtype=np.float32)[:1])
    services.index_sync(store=other_worker)
    assert other_worker.ids() == set(ids)
    assert np.allclose(other_worker.vectors([ids[0]])[1], store.vectors([ids[0]])[1])


def test_pruning_keeps_the_newest_change(store, alice):
    services.document_add(user=alice, documents=DOCS, collection="notes")
    latest = sync.change_latest_id()
    assert sync.change_prune(keep=timedelta(0)) == 2
    assert list(IndexChange.objects.values_list("id", flat=True)) == [latest]
    assert sync.change_log_covers(latest) and not sync.change_log_covers(latest - 2)
