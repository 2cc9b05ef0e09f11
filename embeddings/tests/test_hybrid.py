"""Search modes (vector, keyword, hybrid) through the service and the API: a small fixed corpus, the real MiniLM."""

from __future__ import annotations

import pytest

from embeddings import services
from embeddings.keyword import rrf_fuse
from embeddings.services import sync
from embeddings.store import EmbeddingStore
from llmsite.errors import ApplicationError

pytestmark = pytest.mark.django_db

MANUAL = [
    {"text": "Replace the coolant pump XK-4471 when the pressure drops below 2 bar.", "metadata": {"title": "pump"}},
    {"text": "Error E1042 means the licence server did not answer in time.", "metadata": {"title": "errors"}},
    {"text": "The cooling system holds twelve litres of fluid and is checked every spring."},
    {"text": "Invoices are paid on the last Friday of every month by the finance team."},
]


@pytest.fixture
def manual(store, alice):
    return services.document_add(user=alice, documents=MANUAL, collection="manual").ids


def ids_of(results) -> list[int]:
    return [r.id for r in results]


def test_keyword_search_finds_an_exact_code(manual, alice):
    results = services.search(user=alice, query="XK-4471", top_k=2, collection="manual", mode="keyword")
    assert ids_of(results) == [manual[0]]  # only rows sharing a word come back
    assert results[0].score > 0


def test_hybrid_is_the_reciprocal_rank_fusion_of_both_rankings(store, manual, alice):
    query = "what does error E1042 mean"
    by_meaning = ids_of(services.search(user=alice, query=query, top_k=4, collection="manual", mode="vector"))
    by_words = ids_of(services.search(user=alice, query=query, top_k=4, collection="manual", mode="keyword"))
    hybrid = services.search(user=alice, query=query, top_k=3, collection="manual", mode="hybrid")
    expected = rrf_fuse([by_meaning, by_words])[:3]
    assert [(r.id, round(r.score, 9)) for r in hybrid] == [(i, round(s, 9)) for i, s in expected]
    assert hybrid[0].id == manual[1]


def test_the_default_mode_is_the_setting(manual, alice, settings):
    settings.EMBEDDINGS_SEARCH_MODE = "keyword"
    # "pressure" is in one passage only; a keyword search returns nothing else.
    assert ids_of(services.search(user=alice, query="pressure", top_k=4, collection="manual")) == [manual[0]]
    settings.EMBEDDINGS_SEARCH_MODE = "vector"
    assert len(services.search(user=alice, query="pressure", top_k=4, collection="manual")) == 4


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_every_mode_keeps_to_the_collections_the_user_may_see(store, alice, bob, mode):
    mine = services.document_add(user=alice, documents=[MANUAL[0]], collection="manual").ids
    other = services.document_add(user=alice, documents=[MANUAL[1]], collection="other").ids
    bobs = services.document_add(
        user=bob, documents=[{"text": "Bob's private pump XK-4471 note: pressure 3 bar."}], collection="manual"
    ).ids
    query = "pump XK-4471 pressure"
    found = ids_of(services.search(user=alice, query=query, top_k=10, collection="manual", mode=mode))
    assert found == mine  # not alice's other collection, never bob's
    everything = ids_of(services.search(user=alice, query=query + " E1042", top_k=10, mode=mode))
    assert set(everything) <= {*mine, *other} and bobs[0] not in everything
    assert ids_of(services.search(user=bob, query=query, top_k=10, mode=mode)) == bobs


def test_the_keyword_index_follows_the_change_log_on_another_worker(store, alice, tmp_path):
    other = EmbeddingStore(model_name=store.model_name, dim=store.dim, folder=tmp_path / "other")
    sync.index_sync(store=other)
    ids = services.document_add(user=alice, documents=MANUAL, collection="manual").ids
    assert other.keywords.search("XK-4471", 3) == []
    sync.index_sync(store=other)
    assert [hit.id for hit in other.keywords.search("XK-4471", 3)] == [ids[0]]
    services.document_delete(user=alice, document_id=ids[0])
    sync.index_sync(store=other)
    assert other.keywords.search("XK-4471", 3) == [] and ids[0] not in other.keywords.ids()


def test_a_restart_fills_the_keyword_index_from_the_database(store, manual, alice):
    services.index_save(store=store)
    services.reset_store()
    restarted = services.get_store()
    assert restarted is not store
    assert restarted.keywords.ids() == set(manual)
    assert [hit.id for hit in restarted.keywords.search("E1042", 3)] == [manual[1]]


@pytest.mark.parametrize("mode", ["bm25", "", "HYBRID", 3])
def test_an_unknown_mode_is_a_400_naming_the_field(api_client, alice, store, mode):
    api_client.force_authenticate(alice)
    response = api_client.post("/api/v1/embed/search", {"query": "pump", "mode": mode}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "mode" in str(body) and "vector, keyword, hybrid" in str(body)
    with pytest.raises(ApplicationError) as refused:
        services.search(user=alice, query="pump", mode=mode)
    assert refused.value.status == 400 and refused.value.field == "mode"


def test_the_api_searches_in_the_mode_asked(api_client, alice, manual):
    api_client.force_authenticate(alice)
    body = {"query": "E1042", "collection": "manual", "top_k": 4, "mode": "keyword"}
    response = api_client.post("/api/v1/embed/search", body, format="json")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["id"] for r in results] == [manual[1]]
    assert "page" not in results[0] and "heading" not in results[0]  # a pasted text has neither
