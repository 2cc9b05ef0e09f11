"""The /api/v1/embed/ endpoints: shapes from docs/api.md, validation, permissions."""

from __future__ import annotations

import pytest

from embeddings.models import Collection

pytestmark = pytest.mark.django_db

DOCS = [
    {"text": "The llmsite staging server is named kestrel-7.", "metadata": {"title": "servers"}},
    {"text": "Bananas are rich in potassium."},
    {"text": "The Eiffel Tower stands in Paris."},
]


@pytest.fixture
def as_user(api_client, store):
    def login(user):
        api_client.force_authenticate(user)
        return api_client

    return login


def add(client, documents=DOCS, collection="notes"):
    response = client.post("/api/v1/embed/add", {"documents": documents, "collection": collection}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["ids"]


def test_it_encodes_texts_into_unit_vectors(as_user, alice):
    body = as_user(alice).post("/api/v1/embed/encode", {"texts": ["hello", "world"]}, format="json").json()
    assert body["model"] == "all-MiniLM-L6-v2" and body["dim"] == 384
    assert len(body["embeddings"]) == 2 and len(body["embeddings"][0]) == 384
    assert sum(x * x for x in body["embeddings"][0]) == pytest.approx(1.0, abs=1e-4)


def test_it_adds_searches_and_deletes(as_user, alice):
    client = as_user(alice)
    ids = add(client)
    assert len(ids) == 3
    response = client.post(
        "/api/v1/embed/search", {"query": "staging server name", "collection": "notes"}, format="json"
    )
    results = response.json()["results"]
    assert response.status_code == 200
    assert results[0]["id"] == ids[0]
    assert set(results[0]) >= {"id", "text", "score", "metadata"}
    assert results[0]["metadata"] == {"title": "servers"}

    assert client.delete(f"/api/v1/embed/documents/{ids[0]}").status_code == 204
    results = client.post("/api/v1/embed/search", {"query": "staging server name"}, format="json").json()["results"]
    assert ids[0] not in [r["id"] for r in results]
    assert client.delete(f"/api/v1/embed/documents/{ids[0]}").status_code == 404


def test_another_user_gets_404_for_a_private_collection_and_document(as_user, alice, bob):
    ids = add(as_user(alice))
    client = as_user(bob)
    response = client.post("/api/v1/embed/search", {"query": "server", "collection": "notes"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert client.delete(f"/api/v1/embed/documents/{ids[0]}").status_code == 404
    assert client.get("/api/v1/embed/collections/notes/documents").status_code == 404


def test_shared_collections_are_listed_and_searchable_by_others(as_user, alice, bob):
    ids = add(as_user(alice))
    Collection.objects.filter(name="notes").update(shared=True)
    client = as_user(bob)
    listed = client.get("/api/v1/embed/collections").json()["results"]
    assert listed == [
        {**listed[0], "name": "notes", "owner": "alice", "shared": True, "documents": 3, "vectors": 3, "mine": False}
    ]
    response = client.post(
        "/api/v1/embed/search", {"query": "server", "collection": "notes", "top_k": 1}, format="json"
    )
    assert [r["id"] for r in response.json()["results"]] == ids[:1]
    docs = client.get("/api/v1/embed/collections/notes/documents?limit=2").json()
    assert docs["count"] == 3 and len(docs["results"]) == 2
    assert docs["collections"][0]["owner"] == "alice"


def test_stats_has_the_contract_fields(as_user, alice):
    add(as_user(alice))
    body = as_user(alice).get("/api/v1/embed/stats").json()
    assert {"model", "dim", "documents", "index_type", "collections"} <= set(body)
    assert body["documents"] == 3 and body["index_type"] == "flat"


def test_duplicates_are_skipped_and_reported(as_user, alice):
    client = as_user(alice)
    ids = add(client)
    again = client.post("/api/v1/embed/add", {"documents": DOCS[:1], "collection": "notes"}, format="json").json()
    assert again["ids"] == ids[:1] and again["skipped"] == ids[:1] and again["created"] == []


@pytest.mark.parametrize(
    ("path", "body", "field", "needle"),
    [
        ("encode", {"texts": []}, "texts", "at least one"),
        ("encode", {"texts": [""]}, "texts.0", "non-empty"),
        ("encode", {"texts": ["a"] * 5}, "texts", "limit is 4"),
        ("encode", {"texts": ["x" * 51]}, "texts.0", "limit is 50"),
        ("encode", {"texts": [1]}, "texts.0", "string"),
        ("encode", {"texts": ["a"], "extra": 1}, "extra", "unknown field"),
        ("add", {"documents": []}, "documents", "at least one"),
        ("add", {"documents": [{"text": " "}]}, "documents.0.text", "non-empty"),
        ("add", {"documents": [{"text": "a"}] * 5}, "documents", "limit is 4"),
        ("add", {"documents": [{"text": "x" * 51}]}, "documents.0.text", "limit is 50"),
        ("add", {"documents": [{"text": "a", "metadata": [1]}]}, "documents.0.metadata", "JSON object"),
        ("add", {"documents": [{"text": "a", "metadata": {"k": "v" * 200}}]}, "documents.0.metadata", "limit is 100"),
        ("add", {"documents": [{"text": "a", "colour": "red"}]}, "documents.0.colour", "unknown field"),
        ("add", {"documents": [{"text": "a"}], "collection": ""}, "collection", "non-empty"),
        ("search", {"query": ""}, "query", "non-empty"),
        ("search", {"query": "x" * 51}, "query", "limit is 50"),
        ("search", {"query": "a", "top_k": 0}, "top_k", "1 to 50"),
        ("search", {"query": "a", "top_k": 51}, "top_k", "1 to 50"),
        ("search", {"query": "a", "filter": {}}, "filter", "unknown field"),
        ("search", {}, "query", "required"),
    ],
)
def test_it_refuses_bad_input_with_400_naming_the_limit(as_user, alice, settings, path, body, field, needle):
    settings.EMBEDDINGS_MAX_BATCH = 4
    settings.EMBEDDINGS_MAX_TEXT_CHARS = 50
    settings.EMBEDDINGS_MAX_METADATA_BYTES = 100
    response = as_user(alice).post(f"/api/v1/embed/{path}", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert needle in error["message"]


@pytest.mark.parametrize("path", ["save", "load"])
def test_save_and_load_are_for_staff_only(as_user, alice, staff, path):
    assert as_user(alice).post(f"/api/v1/embed/{path}").status_code == 403
    response = as_user(staff).post(f"/api/v1/embed/{path}")
    assert response.status_code == 200, response.content


def test_staff_save_then_load_reports_the_loaded_index(as_user, staff):
    client = as_user(staff)
    add(client)
    saved = client.post("/api/v1/embed/save").json()
    assert saved["count"] == 3 and saved["checksum"].startswith("sha256:")
    loaded = client.post("/api/v1/embed/load").json()
    assert loaded["origin"] == "loaded" and loaded["vectors"] == 3


def test_anonymous_calls_are_refused(api_client):
    assert api_client.post("/api/v1/embed/search", {"query": "a"}, format="json").status_code == 401
