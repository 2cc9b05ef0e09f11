"""Predict with `collection`: answers grounded in the caller's documents, with the sources shown."""

import pytest

from embeddings import services as embeddings
from inference.grounding import INSTRUCTIONS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_embedding_index")]

DOCS = [
    {"text": "The llmsite office cat is called Marmalade and sleeps on the server rack.", "metadata": {"title": "Cat"}},
    {"text": "Invoices are paid on the last Friday of every month by the finance team.", "metadata": {"title": "Pay"}},
    {"text": "The staging database is restored from backup every Sunday night.", "metadata": {"title": "Ops"}},
]


@pytest.fixture
def handbook(alice):
    return embeddings.document_add(user=alice, documents=DOCS, collection="handbook")


def test_the_answer_is_grounded_in_the_best_passages_and_names_them(alice_client, handbook, seen):
    body = {"prompt": "What is the name of the office cat?", "collection": "handbook", "top_k": 2, "max_new_tokens": 4}
    response = alice_client.post("/api/v1/predict", body, format="json")
    assert response.status_code == 200, response.content
    sources = response.json()["sources"]
    assert len(sources) == 2
    assert sources[0]["title"] == "Cat"
    assert "Marmalade" in sources[0]["snippet"]
    assert sources[0]["score"] >= sources[1]["score"]
    system, question = seen[0].messages
    assert system.role == "system" and INSTRUCTIONS in system.content
    assert "[1] Cat\nThe llmsite office cat is called Marmalade" in system.content
    assert question.content == "What is the name of the office cat?"


def test_a_callers_own_system_message_is_kept(alice_client, handbook, seen):
    body = {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "When are invoices paid?"},
        ],
        "collection": "handbook",
        "max_new_tokens": 2,
    }
    assert alice_client.post("/api/v1/predict", body, format="json").status_code == 200
    system = seen[0].messages[0]
    assert system.content.startswith("Be terse.\n\n")
    assert "last Friday" in system.content
    assert len(seen[0].messages) == 2


def test_another_users_collection_is_not_found(handbook, bob, api_client, serving):
    api_client.force_authenticate(user=bob)
    body = {"prompt": "What is the cat called?", "collection": "handbook"}
    response = api_client.post("/api/v1/predict", body, format="json")
    assert response.status_code == 404
    assert "Marmalade" not in response.content.decode()


def test_plain_answers_have_no_sources(alice_client, serving):
    response = alice_client.post("/api/v1/predict", {"prompt": "Hi", "max_new_tokens": 2}, format="json")
    assert "sources" not in response.json()
