"""The conversations REST API: create, list, show, rename, delete your own; another user's is a 404."""

from __future__ import annotations

import pytest

from conversations.models import Conversation, Message
from conversations.services import conversation_create
from conversations.tests.conftest import append

pytestmark = pytest.mark.django_db


def test_it_creates_lists_shows_renames_and_deletes_a_conversation(alice_client):
    created = alice_client.post("/api/v1/conversations", {"title": "Plans"}, format="json")
    assert created.status_code == 201
    chat_id = created.json()["id"]
    chat = Conversation.objects.get(pk=chat_id)
    append(chat, "Hi")

    listed = alice_client.get("/api/v1/conversations").json()
    assert listed["count"] == 1
    assert listed["results"][0] | {"created": None, "updated": None} == {
        "id": chat_id,
        "title": "Plans",
        "model": "",
        "messages_count": 2,
        "created": None,
        "updated": None,
    }

    shown = alice_client.get(f"/api/v1/conversations/{chat_id}").json()
    assert [(m["role"], m["content"]) for m in shown["messages"]] == [("user", "Hi"), ("assistant", "Hi there.")]
    assert shown["messages"][1]["model"] == "tiny-a"
    assert shown["messages"][1]["completion_tokens"] == 3

    renamed = alice_client.patch(f"/api/v1/conversations/{chat_id}", {"title": "  Trip   plans "}, format="json")
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "Trip plans"

    assert alice_client.delete(f"/api/v1/conversations/{chat_id}").status_code == 204
    assert not Conversation.objects.filter(pk=chat_id).exists()
    assert not Message.objects.exists()
    assert alice_client.get(f"/api/v1/conversations/{chat_id}").status_code == 404


def test_another_users_conversation_is_a_404_and_stays_unchanged(alice, bob_client):
    chat = conversation_create(user=alice, title="Private")
    append(chat, "secret")
    url = f"/api/v1/conversations/{chat.pk}"

    for response in (
        bob_client.get(url),
        bob_client.patch(url, {"title": "mine now"}, format="json"),
        bob_client.delete(url),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert "secret" not in response.content.decode()

    assert bob_client.get("/api/v1/conversations").json() == {"count": 0, "limit": 50, "offset": 0, "results": []}
    chat.refresh_from_db()
    assert chat.title == "Private"
    assert chat.messages.count() == 2


def test_the_list_is_paginated_most_recently_active_first(alice_client, alice):
    chats = [conversation_create(user=alice, title=f"c{n}") for n in range(5)]
    append(chats[1], "bump")

    first = alice_client.get("/api/v1/conversations?limit=2").json()
    second = alice_client.get("/api/v1/conversations?limit=2&offset=2").json()

    assert first["count"] == 5
    assert [c["title"] for c in first["results"]] == ["c1", "c4"]
    assert [c["title"] for c in second["results"]] == ["c3", "c2"]
    assert alice_client.get("/api/v1/conversations?limit=0").status_code == 400
    assert alice_client.get("/api/v1/conversations?limit=1000").status_code == 400


def test_it_shows_the_model_a_conversation_talks_to_once_a_turn_named_one(alice_client, alice):
    chat = conversation_create(user=alice, title="Pool")
    url = f"/api/v1/conversations/{chat.pk}"
    assert alice_client.get(url).json()["model"] == ""  # the site's default answers

    append(chat, "Hi", model="tiny-b", chosen_model="tiny-b")

    assert alice_client.get(url).json()["model"] == "tiny-b"
    assert alice_client.get("/api/v1/conversations").json()["results"][0]["model"] == "tiny-b"
    assert alice_client.patch(url, {"title": "Pool", "model": "tiny-a"}, format="json").status_code == 400
    assert alice_client.get(url).json()["model"] == "tiny-b"  # set by the turns only


@pytest.mark.parametrize(
    "body, field",
    [
        ({"title": "x" * 201}, "title"),
        ({"title": 5}, "title"),
        ({"colour": "red"}, "colour"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(alice_client, body, field):
    response = alice_client.post("/api/v1/conversations", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert not Conversation.objects.exists()


def test_it_needs_a_login(api_client):
    assert api_client.get("/api/v1/conversations").status_code == 401
