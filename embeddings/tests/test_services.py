"""Services with the real MiniLM: relevance, deletion, persistence, repair, visibility, chunking."""

from __future__ import annotations

import itertools
import json
import logging

import pytest

from embeddings import services
from embeddings.models import Collection, Document
from embeddings.store import MANIFEST_FILE
from llmsite.errors import ApplicationError

pytestmark = pytest.mark.django_db

DOCS = [
    {"text": "The llmsite staging server is named kestrel-7.", "metadata": {"title": "servers"}},
    {"text": "Bananas are rich in potassium and taste sweet.", "metadata": {"title": "fruit"}},
    {"text": "The Eiffel Tower stands in Paris, France.", "metadata": {"title": "landmarks"}},
]


def add_three(user, collection="notes"):
    return services.document_add(user=user, documents=DOCS, collection=collection)


def test_it_finds_the_relevant_document_first(store, alice):
    ids = add_three(alice).ids
    results = services.search(user=alice, query="What is the staging server called?", top_k=3, collection="notes")
    assert next(r.id for r in results) == ids[0]
    assert results[0].score > results[1].score
    assert results[0].metadata == {"title": "servers"}


def test_delete_removes_a_document_from_results(store, alice):
    ids = add_three(alice).ids
    services.document_delete(user=alice, document_id=ids[0])
    results = services.search(user=alice, query="staging server name", top_k=3, collection="notes")
    assert ids[0] not in [r.id for r in results]
    assert ids[0] not in store.ids()
    assert not Document.objects.filter(pk=ids[0]).exists()


def test_save_then_a_new_store_loads_identical_results(store, alice):
    add_three(alice)
    services.index_save()
    before = services.search(user=alice, query="a sweet fruit", top_k=3)
    services.reset_store()  # as a restart would
    after = services.search(user=alice, query="a sweet fruit", top_k=3)
    assert services.store_status()["origin"] == "loaded"
    assert services.get_store() is not store
    assert [(r.id, round(r.score, 5)) for r in after] == [(r.id, round(r.score, 5)) for r in before]


def test_a_truncated_index_at_start_is_detected_and_rebuilt(store, alice, index_dir, caplog):
    ids = add_three(alice).ids
    services.index_save()
    path = index_dir / services.get_store().read_manifest()["file"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    services.reset_store()
    with caplog.at_level(logging.WARNING, logger="embeddings.services"):
        results = services.search(user=alice, query="staging server", top_k=1)
    assert results[0].id == ids[0]
    status = services.store_status()
    assert status["origin"] == "rebuilt"
    assert "rebuilding" in caplog.text
    # The rebuilt index was saved over the broken one and now loads cleanly.
    services.reset_store()
    services.get_store()
    assert services.store_status()["origin"] == "loaded"


@pytest.mark.parametrize(("key", "value"), [("model", "some-other-model"), ("dim", 768)])
def test_a_manifest_for_another_model_or_dimension_is_rebuilt(store, alice, index_dir, key, value):
    ids = add_three(alice).ids
    services.index_save()
    manifest = json.loads((index_dir / MANIFEST_FILE).read_text())
    manifest[key] = value
    (index_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    services.reset_store()
    result = services.index_load(store=services.build_store())
    assert result["origin"] == "rebuilt"
    assert key in result["reason"]
    assert result["vectors"] == len(ids)


def test_a_stale_saved_index_is_reconciled_with_the_database(store, alice, settings):
    settings.EMBEDDINGS_AUTOSAVE = False
    ids = add_three(alice).ids
    services.index_save()
    services.document_delete(user=alice, document_id=ids[1])
    extra = services.document_add(user=alice, documents=[{"text": "Owls hunt at night."}], collection="notes").ids
    result = services.index_load()
    assert result["origin"] == "loaded"
    assert (result["added"], result["removed"]) == (1, 1)
    assert services.get_store().ids() == {ids[0], ids[2], extra[0]}


def test_user_b_cannot_search_or_retrieve_from_user_a_s_collection(store, alice, bob):
    add_three(alice)
    for call in (services.search, services.retrieve):
        with pytest.raises(ApplicationError) as caught:
            call(user=bob, query="staging server", top_k=3, collection="notes")
        assert caught.value.status == 404
    assert services.search(user=bob, query="staging server", top_k=3) == []


def test_user_b_cannot_delete_user_a_s_document(store, alice, bob):
    ids = add_three(alice).ids
    with pytest.raises(ApplicationError) as caught:
        services.document_delete(user=bob, document_id=ids[0])
    assert caught.value.status == 404
    assert Document.objects.filter(pk=ids[0]).exists()


def test_shared_collections_are_visible_to_everyone(store, alice, bob):
    ids = add_three(alice)
    Collection.objects.filter(owner=alice, name="notes").update(shared=True)
    results = services.search(user=bob, query="staging server", top_k=1, collection="notes")
    assert results[0].id == ids.ids[0]
    assert services.search(user=bob, query="staging server", top_k=1)[0].id == ids.ids[0]


def test_own_collection_wins_over_a_shared_one_of_the_same_name(store, alice, bob):
    add_three(alice)
    Collection.objects.filter(owner=alice, name="notes").update(shared=True)
    mine = services.document_add(user=bob, documents=[{"text": "Bob's note about gardening."}], collection="notes")
    results = services.search(user=bob, query="staging server", top_k=5, collection="notes")
    assert [r.id for r in results] == mine.ids


def test_retrieve_returns_chunks_with_title_and_snippet(store, alice):
    ids = add_three(alice).ids
    chunks = services.retrieve(user=alice, collection="notes", query="What is the staging server named?", top_k=2)
    assert len(chunks) == 2
    first = chunks[0]
    assert isinstance(first, services.RetrievedChunk)
    assert (first.id, first.document_id, first.title) == (ids[0], ids[0], "servers")
    assert "kestrel-7" in first.text and "kestrel-7" in first.snippet
    assert 0 < first.score <= 1


def test_long_texts_are_split_into_overlapping_chunks_pointing_at_their_source(store, alice, settings):
    settings.EMBEDDINGS_CHUNK_CHARS = 200
    settings.EMBEDDINGS_CHUNK_OVERLAP = 50
    filler = " ".join(f"sentence number {i} talks about nothing in particular." for i in range(30))
    text = filler + " The secret launch code is amber-falcon-42."
    result = services.document_add(user=alice, documents=[{"text": text, "metadata": {"title": "long"}}])
    source = Document.objects.get(pk=result.ids[0])
    chunks = list(source.chunks.order_by("chunk_index"))
    assert not source.indexed and result.chunks == len(chunks) > 5
    assert all(len(c.text) <= 200 and c.indexed and c.metadata == {"title": "long"} for c in chunks)
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    for before, after in itertools.pairwise(chunks):
        assert after.text[:20] in before.text  # overlap: the next chunk begins inside the previous one
    hit = services.retrieve(user=alice, collection="default", query="What is the launch code?", top_k=1)[0]
    assert "amber-falcon-42" in hit.text and hit.document_id == source.id and hit.title == "long"
    # Deleting the source deletes its chunks and their vectors.
    services.document_delete(user=alice, document_id=source.id)
    assert store.ids() == set() and not Document.objects.exists()


def test_chunking_covers_the_whole_text():
    text = " ".join(f"w{i}" for i in range(500))
    chunks = services.chunk_text(text, size=120, overlap=30)
    assert all(len(c) <= 120 for c in chunks)
    words = set(text.split())
    assert words == {w for c in chunks for w in c.split()}
    assert services.chunk_text("short", size=120, overlap=30) == ["short"]


def test_duplicate_texts_are_skipped(store, alice):
    first = add_three(alice)
    again = services.document_add(
        user=alice,
        documents=[DOCS[0], {"text": "  " + DOCS[1]["text"] + "\n"}, {"text": "New text."}],
        collection="notes",
    )
    assert again.ids[:2] == first.ids[:2]
    assert again.skipped == first.ids[:2]
    assert len(again.created) == 1
    assert len(store) == 4
    within = services.document_add(user=alice, documents=[{"text": "twice"}, {"text": "twice"}], collection="notes")
    assert within.ids[0] == within.ids[1] and len(within.created) == 1
    # The same text in another collection is another document.
    other = services.document_add(user=alice, documents=[DOCS[0]], collection="elsewhere")
    assert other.created and other.ids[0] != first.ids[0]


@pytest.mark.parametrize(
    ("kwargs", "field", "needle"),
    [
        ({"query": "   "}, "query", "non-empty"),
        ({"query": "x" * 101}, "query", "101"),
        ({"query": "ok", "top_k": 0}, "top_k", "1 to 50"),
        ({"query": "ok", "top_k": 51}, "top_k", "1 to 50"),
    ],
)
def test_search_validates_its_input(alice, settings, kwargs, field, needle):
    settings.EMBEDDINGS_MAX_TEXT_CHARS = 100
    with pytest.raises(ApplicationError) as caught:
        services.search(user=alice, **kwargs)
    assert caught.value.field == field and needle in caught.value.message


def test_stats_count_documents_and_collections(store, alice):
    add_three(alice)
    body = services.stats(user=alice)
    assert (body["model"], body["dim"], body["index_type"]) == ("all-MiniLM-L6-v2", 384, "flat")
    assert (body["documents"], body["vectors"], body["collections"]) == (3, 3, 1)
