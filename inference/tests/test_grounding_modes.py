"""Grounded answers: the retrieval mode a request asks for, and sources kept with the answer in its conversation."""

import pytest

from embeddings import services as embeddings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_embedding_index")]

DOCS = [
    {"text": "Part XK-4471 is the coolant pump of the north plant.", "metadata": {"title": "Parts"}},
    {"text": "The office cat is called Marmalade and sleeps on the server rack.", "metadata": {"title": "Cat"}},
    {"text": "Invoices are paid on the last Friday of every month.", "metadata": {"title": "Pay"}},
]


@pytest.fixture
def handbook(alice):
    return embeddings.document_add(user=alice, documents=DOCS, collection="handbook")


def test_a_keyword_retrieval_grounds_the_answer_in_the_passages_sharing_its_words(alice_client, handbook, seen):
    body = {"prompt": "XK-4471", "collection": "handbook", "retrieval_mode": "keyword", "max_new_tokens": 2}
    response = alice_client.post("/api/v1/predict", body, format="json")
    assert response.status_code == 200, response.content
    sources = response.json()["sources"]
    assert [s["title"] for s in sources] == ["Parts"]  # keyword search returns only passages sharing a word
    assert "[1] Parts\nPart XK-4471" in seen[0].messages[0].content


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"collection": "handbook", "retrieval_mode": "bm25"}, "retrieval_mode"),
        ({"retrieval_mode": "keyword"}, "retrieval_mode"),  # no collection to retrieve from
    ],
)
def test_a_bad_retrieval_mode_is_a_400_naming_the_field(alice_client, handbook, serving, extra, field):
    response = alice_client.post("/api/v1/predict", {"prompt": "Hi", **extra}, format="json")
    assert response.status_code == 400
    assert field in response.content.decode()


def test_sources_are_kept_with_the_answer_and_shown_when_the_conversation_is_reopened(alice_client, handbook, serving):
    thread = alice_client.post("/api/v1/conversations", {}, format="json").json()["id"]
    body = {
        "prompt": "What is the office cat called?",
        "collection": "handbook",
        "top_k": 2,
        "conversation": thread,
        "max_new_tokens": 3,
    }
    answer = alice_client.post("/api/v1/predict", body, format="json").json()
    assert len(answer["sources"]) == 2
    messages = alice_client.get(f"/api/v1/conversations/{thread}").json()["messages"]
    user_turn, assistant_turn = messages
    assert user_turn["sources"] == []
    assert assistant_turn["id"] == answer["message"]
    assert assistant_turn["sources"] == answer["sources"]
    assert assistant_turn["sources"][0]["title"] == "Cat"
    # A plain turn after it keeps no sources of its own.
    alice_client.post(
        "/api/v1/predict", {"prompt": "Thanks", "conversation": thread, "max_new_tokens": 2}, format="json"
    )
    assert alice_client.get(f"/api/v1/conversations/{thread}").json()["messages"][-1]["sources"] == []
