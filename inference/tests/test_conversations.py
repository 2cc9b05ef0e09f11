"""Conversations: each user's chats, kept as history and sent with the next turn; others' are 404."""

from __future__ import annotations

import pytest

from inference import conversations, services
from inference.models import Conversation, Message
from inference.providers.base import TextDelta, Usage
from inference.services import CompletionResult
from llmsite.errors import ApplicationError

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The users get real passwords; PBKDF2 would be most of these tests' run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def answer(text: str = "Hi there.", *, provider: str = "hf", model: str = "tiny-a") -> CompletionResult:
    return CompletionResult(
        id="cmpl-0123abcd",
        text=text,
        provider=provider,
        model=model,
        usage=Usage(prompt_tokens=12, completion_tokens=3),
        cached=False,
        latency_ms=5.0,
        ttft_ms=1.0,
        finish_reason="stop",
    )


@pytest.fixture
def bob_client(bob):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=bob)
    return client


# --- services ------------------------------------------------------------------------------------


def test_record_exchange_appends_the_turn_and_the_answer_with_provider_model_and_tokens(alice):
    chat = conversations.conversation_create(user=alice)
    reply = conversations.record_exchange(conversation=chat, prompt="Hello   there,\nmodel", result=answer())

    user_turn, assistant_turn = chat.messages.all()
    assert (user_turn.role, user_turn.content, user_turn.prompt_tokens) == ("user", "Hello   there,\nmodel", None)
    assert assistant_turn == reply
    assert (reply.role, reply.content, reply.provider, reply.model) == ("assistant", "Hi there.", "hf", "tiny-a")
    assert (reply.prompt_tokens, reply.completion_tokens, reply.finish_reason) == (12, 3, "stop")
    assert reply.completion_id == "cmpl-0123abcd"
    chat.refresh_from_db()
    assert chat.title == "Hello there, model"  # named after the first user turn, on one line


def test_conversation_input_puts_the_history_before_the_new_turn(alice):
    chat = conversations.conversation_create(user=alice, messages=[{"role": "system", "content": "Be brief."}])
    conversations.record_exchange(conversation=chat, prompt="What is 2+2?", result=answer("4"))

    sent = conversations.conversation_input(conversation=chat, prompt="And 3+3?")

    assert sent == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]


def test_new_turns_given_as_messages_are_appended_in_order(alice):
    chat = conversations.conversation_create(user=alice)
    turns = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}]
    assert conversations.conversation_input(conversation=chat, messages=turns) == turns
    conversations.record_exchange(conversation=chat, messages=turns, result=answer("Bonjour"))
    assert list(chat.messages.values_list("role", "content")) == [
        ("system", "Answer in French."),
        ("user", "Hello"),
        ("assistant", "Bonjour"),
    ]


def test_history_keeps_system_turns_and_the_latest_others_when_too_long(alice, settings):
    settings.CONVERSATION_HISTORY_MAX_MESSAGES = 3
    chat = conversations.conversation_create(user=alice, messages=[{"role": "system", "content": "Rules."}])
    for n in range(4):
        conversations.record_exchange(conversation=chat, prompt=f"q{n}", result=answer(f"a{n}"))

    history = conversations.history_messages(conversation=chat)

    # The 3 latest are a2, q3, a3; an answer cannot open the history, so a2 goes too.
    assert [m["content"] for m in history] == ["Rules.", "q3", "a3"]


def test_history_fits_the_prompt_character_limit_with_the_new_turn(alice, settings):
    settings.LLM_MAX_PROMPT_CHARS = 100
    chat = conversations.conversation_create(user=alice)
    conversations.record_exchange(conversation=chat, prompt="x" * 40, result=answer("y" * 40))
    conversations.record_exchange(conversation=chat, prompt="short", result=answer("ok"))

    sent = conversations.conversation_input(conversation=chat, prompt="z" * 30)

    assert [m["content"] for m in sent] == ["short", "ok", "z" * 30]
    assert sum(len(m["content"]) for m in sent) <= 100


def test_recording_into_a_conversation_deleted_meanwhile_is_a_404(alice):
    chat = conversations.conversation_create(user=alice)
    Conversation.objects.filter(pk=chat.pk).delete()
    with pytest.raises(ApplicationError) as caught:
        conversations.record_exchange(conversation=chat, prompt="Hi", result=answer())
    assert (caught.value.status, caught.value.field) == (404, "conversation")
    assert not Message.objects.exists()


def test_conversation_get_refuses_another_users_conversation(alice, bob):
    chat = conversations.conversation_create(user=alice)
    with pytest.raises(ApplicationError) as caught:
        conversations.conversation_get(user=bob, conversation_id=chat.pk)
    assert (caught.value.status, caught.value.code, caught.value.field) == (404, "not_found", "conversation")
    assert conversations.conversation_get(user=alice, conversation_id=str(chat.pk)) == chat


def test_a_chat_round_trip_through_the_real_completion_service(alice, serving):
    chat = conversations.conversation_create(user=alice)
    for prompt in ("Hello", "Tell me more"):
        sent = conversations.conversation_input(conversation=chat, prompt=prompt)
        result = services.complete(user=alice, messages=sent, max_new_tokens=3)
        conversations.record_exchange(conversation=chat, prompt=prompt, result=result)

    roles = list(chat.messages.values_list("role", flat=True))
    assert roles == ["user", "assistant", "user", "assistant"]
    last = chat.messages.last()
    assert (last.provider, last.model) == ("hf", "tiny-a")
    assert last.prompt_tokens > 0 and 0 < last.completion_tokens <= 3


@pytest.mark.django_db(transaction=True)  # the a- functions run in a worker thread, on its own connection
async def test_the_async_twins_serve_a_streamed_exchange(alice, serving):
    chat = await Conversation.objects.acreate(user=alice)
    found = await conversations.aconversation_get(user=alice, conversation_id=chat.pk)
    sent = await conversations.aconversation_input(conversation=found, prompt="Stream please")
    result = None
    async for event in services.complete_stream(user=alice, messages=sent, max_new_tokens=3):
        if not isinstance(event, TextDelta):
            result = event
    reply = await conversations.arecord_exchange(conversation=found, prompt="Stream please", result=result)

    assert reply.content == result.text
    assert [m.role async for m in Message.objects.filter(conversation=chat)] == ["user", "assistant"]


# --- API -----------------------------------------------------------------------------------------


def test_it_creates_lists_shows_renames_and_deletes_a_conversation(alice_client):
    created = alice_client.post("/api/v1/conversations", {"title": "Plans"}, format="json")
    assert created.status_code == 201
    chat_id = created.json()["id"]
    chat = Conversation.objects.get(pk=chat_id)
    conversations.record_exchange(conversation=chat, prompt="Hi", result=answer())

    listed = alice_client.get("/api/v1/conversations").json()
    assert listed["count"] == 1
    assert listed["results"][0] | {"created": None, "updated": None} == {
        "id": chat_id,
        "title": "Plans",
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
    chat = conversations.conversation_create(user=alice, title="Private")
    conversations.record_exchange(conversation=chat, prompt="secret", result=answer())
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
    chats = [conversations.conversation_create(user=alice, title=f"c{n}") for n in range(5)]
    conversations.record_exchange(conversation=chats[1], prompt="bump", result=answer())

    first = alice_client.get("/api/v1/conversations?limit=2").json()
    second = alice_client.get("/api/v1/conversations?limit=2&offset=2").json()

    assert first["count"] == 5
    assert [c["title"] for c in first["results"]] == ["c1", "c4"]
    assert [c["title"] for c in second["results"]] == ["c3", "c2"]
    assert alice_client.get("/api/v1/conversations?limit=0").status_code == 400
    assert alice_client.get("/api/v1/conversations?limit=1000").status_code == 400


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
