"""Conversation writes: seeding, appending an exchange in plain data, titles, a conversation deleted meanwhile."""

from __future__ import annotations

import pytest

from conversations.models import Conversation, Message
from conversations.services import (
    aexchange_append,
    conversation_create,
    conversation_delete,
    conversation_rename,
    exchange_append,
)
from conversations.tests.conftest import append
from llmsite.errors import ApplicationError

pytestmark = pytest.mark.django_db


def test_exchange_append_stores_the_turn_and_the_answer_with_provider_model_and_tokens(alice):
    chat = conversation_create(user=alice)
    reply = append(chat, "Hello   there,\nmodel")

    user_turn, assistant_turn = chat.messages.all()
    assert (user_turn.role, user_turn.content, user_turn.prompt_tokens) == ("user", "Hello   there,\nmodel", None)
    assert assistant_turn == reply
    assert (reply.role, reply.content, reply.provider, reply.model) == ("assistant", "Hi there.", "hf", "tiny-a")
    assert (reply.prompt_tokens, reply.completion_tokens, reply.finish_reason) == (12, 3, "stop")
    assert reply.completion_id == "cmpl-0123abcd"
    chat.refresh_from_db()
    assert chat.title == "Hello there, model"  # named after the first user turn, on one line


def test_several_new_turns_are_appended_in_order_before_the_answer(alice):
    chat = conversation_create(user=alice)
    turns = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}]
    exchange_append(
        conversation=chat,
        turns=turns,
        answer="Bonjour",
        provider="hf",
        model="tiny-a",
        prompt_tokens=9,
        completion_tokens=2,
        finish_reason="stop",
        completion_id="cmpl-1",
    )
    assert list(chat.messages.values_list("role", "content")) == [
        ("system", "Answer in French."),
        ("user", "Hello"),
        ("assistant", "Bonjour"),
    ]


def test_a_long_first_turn_names_the_conversation_shortened_and_a_title_is_kept(alice):
    chat = conversation_create(user=alice)
    append(chat, "word " * 30)
    chat.refresh_from_db()
    assert len(chat.title) == 60 and chat.title.endswith("…")

    titled = conversation_create(user=alice, title="Mine")
    append(titled, "Something else")
    titled.refresh_from_db()
    assert titled.title == "Mine"


def test_appending_to_a_conversation_deleted_meanwhile_is_a_404(alice):
    chat = conversation_create(user=alice)
    Conversation.objects.filter(pk=chat.pk).delete()
    with pytest.raises(ApplicationError) as caught:
        append(chat, "Hi")
    assert (caught.value.status, caught.value.field) == (404, "conversation")
    assert not Message.objects.exists()


def test_a_conversation_starts_with_its_seed_turns_and_refuses_an_unknown_role(alice):
    chat = conversation_create(user=alice, messages=[{"role": "system", "content": "Be brief."}])
    assert list(chat.messages.values_list("role", "content")) == [("system", "Be brief.")]

    with pytest.raises(ApplicationError) as caught:
        conversation_create(user=alice, messages=[{"role": "user", "content": "ok"}, {"role": "wizard", "content": ""}])
    assert caught.value.field == "messages.1.role"
    assert Conversation.objects.count() == 1


def test_renaming_collapses_whitespace_and_is_not_activity(alice):
    chat = conversation_create(user=alice)
    before = chat.updated
    conversation_rename(conversation=chat, title="  Trip \n plans ")
    chat.refresh_from_db()
    assert (chat.title, chat.updated) == ("Trip plans", before)
    with pytest.raises(ApplicationError):
        conversation_rename(conversation=chat, title="x" * 201)


def test_deleting_removes_the_messages(alice):
    chat = conversation_create(user=alice)
    append(chat, "Hi")
    conversation_delete(conversation=chat)
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)  # the a- function runs in a worker thread, on its own connection
async def test_the_async_twin_appends_off_the_event_loop(alice):
    chat = await Conversation.objects.acreate(user=alice)
    reply = await aexchange_append(
        conversation=chat,
        turns=[{"role": "user", "content": "Stream please"}],
        answer="Streamed.",
        provider="hf",
        model="tiny-a",
        prompt_tokens=5,
        completion_tokens=2,
        finish_reason="cancelled",
        completion_id="cmpl-2",
    )
    assert (reply.content, reply.finish_reason) == ("Streamed.", "cancelled")
    assert [m.role async for m in Message.objects.filter(conversation=chat)] == ["user", "assistant"]
