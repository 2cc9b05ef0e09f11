"""Deleting a collection: its documents, chunks and vectors go, on this worker and every other; only the owner may."""

from __future__ import annotations

import pytest

from embeddings import services
from embeddings.models import Collection, Document, IndexChange
from embeddings.services import sync
from embeddings.store import EmbeddingStore
from llmsite.errors import ApplicationError

pytestmark = pytest.mark.django_db

LONG = " ".join(f"Sentence {i} of the long maintenance manual mentions valve V-{i:03d}." for i in range(60))
DOCS = [
    {"text": "The coolant pump XK-4471 is replaced every two years."},
    {"text": LONG, "metadata": {"title": "manual"}},
]


@pytest.fixture
def other_worker(store, tmp_path):
    return EmbeddingStore(model_name=store.model_name, dim=store.dim, folder=tmp_path / "other-worker")


def test_deleting_a_collection_removes_its_documents_chunks_and_vectors_everywhere(store, other_worker, alice):
    added = services.document_add(user=alice, documents=DOCS, collection="manual")
    kept = services.document_add(user=alice, documents=[{"text": "Kept: pump XK-4471 spare."}], collection="spares")
    sync.index_sync(store=other_worker)
    rows = set(Document.objects.filter(collection__name="manual", indexed=True).values_list("id", flat=True))
    assert added.chunks > 1 and rows <= store.ids() and rows <= other_worker.ids()

    deleted = services.collection_delete(user=alice, name="manual")

    assert (deleted.documents, deleted.vectors) == (2, len(rows))
    assert not Collection.objects.filter(owner=alice, name="manual").exists()
    assert not Document.objects.filter(id__in=[*rows, *added.ids]).exists()
    # This worker's indexes dropped them at once, vectors and words alike ...
    assert not rows & store.ids() and not rows & store.keywords.ids()
    # ... and another worker drops them from the change log.
    assert set(IndexChange.objects.filter(kind="remove").values_list("document_id", flat=True)) == rows
    sync.index_sync(store=other_worker)
    assert not rows & other_worker.ids() and not rows & other_worker.keywords.ids()
    assert other_worker.ids() == set(kept.ids)
    results = services.search(user=alice, query="pump XK-4471", top_k=5, mode="hybrid")
    assert [r.id for r in results] == kept.ids


def test_only_the_owner_deletes_a_collection(store, alice, bob):
    services.document_add(user=alice, documents=DOCS[:1], collection="manual")
    Collection.objects.filter(owner=alice, name="manual").update(shared=True)  # bob can search it, not delete it
    with pytest.raises(ApplicationError) as refused:
        services.collection_delete(user=bob, name="manual")
    assert refused.value.status == 404
    assert Document.objects.filter(collection__name="manual").count() == 1


def test_the_api_deletes_a_collection_and_says_what_went(api_client, store, alice, bob):
    services.document_add(user=alice, documents=DOCS, collection="manual")
    api_client.force_authenticate(bob)
    assert api_client.delete("/api/v1/embed/collections/manual").status_code == 404
    api_client.force_authenticate(alice)
    response = api_client.delete("/api/v1/embed/collections/manual")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["collection"] == "manual" and body["documents"] == 2 and body["vectors"] > 2
    assert api_client.get("/api/v1/embed/collections").json()["results"] == []
    assert api_client.delete("/api/v1/embed/collections/manual").status_code == 404
    search = api_client.post("/api/v1/embed/search", {"query": "valve", "collection": "manual"}, format="json")
    assert search.status_code == 404
    # A name no collection can have (an unassigned, unprintable character here) is a 400 giving the rule, as elsewhere.
    refused = api_client.delete("/api/v1/embed/collections/%C2%A3%F2%B4%AF%BF")
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "collection"


def test_the_admin_action_deletes_collections_with_their_vectors(client, staff, store, alice):
    services.document_add(user=alice, documents=DOCS, collection="manual")
    collection = Collection.objects.get(owner=alice, name="manual")
    rows = set(Document.objects.filter(collection=collection, indexed=True).values_list("id", flat=True))
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    response = client.post(
        "/admin/embeddings/collection/",
        {"action": "delete_with_vectors", "_selected_action": [collection.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Deleted 2 documents" in response.content.decode()
    assert not Collection.objects.filter(pk=collection.pk).exists()
    assert not rows & store.ids() and not rows & store.keywords.ids()
