"""Conversation reads: the history sent with a new turn (trimmed to fit), and one user's conversation only."""

from __future__ import annotations

import pytest

from conversations.models import Conversation
from conversations.selectors import aconversation_get, aconversation_history, conversation_get, conversation_history
from conversations.services import conversation_create
from conversations.tests.conftest import append
from llmsite.errors import ApplicationError

pytestmark = pytest.mark.django_db


def test_the_history_goes_before_the_new_turns(alice):
    chat = conversation_create(user=alice, messages=[{"role": "system", "content": "Be brief."}])
    append(chat, "What is 2+2?", "4")

    sent = conversation_history(conversation=chat, new_turns=[{"role": "user", "content": "And 3+3?"}])

    assert sent == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]


def test_an_empty_conversation_sends_just_the_new_turns(alice):
    chat = conversation_create(user=alice)
    turns = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}]
    assert conversation_history(conversation=chat, new_turns=turns) == turns


def test_history_keeps_system_turns_and_the_latest_others_when_too_long(alice, settings):
    settings.CONVERSATION_HISTORY_MAX_MESSAGES = 3
    chat = conversation_create(user=alice, messages=[{"role": "system", "content": "Rules."}])
    for n in range(4):
        append(chat, f"q{n}", f"a{n}")

    history = conversation_history(conversation=chat, new_turns=[])

    # The 3 latest are a2, q3, a3; an answer cannot open the history, so a2 goes too.
    assert [m["content"] for m in history] == ["Rules.", "q3", "a3"]


def test_history_fits_the_prompt_character_limit_with_the_new_turns(alice, settings):
    settings.LLM_MAX_PROMPT_CHARS = 100
    chat = conversation_create(user=alice)
    append(chat, "x" * 40, "y" * 40)
    append(chat, "short", "ok")

    sent = conversation_history(conversation=chat, new_turns=[{"role": "user", "content": "z" * 30}])

    assert [m["content"] for m in sent] == ["short", "ok", "z" * 30]
    assert sum(len(m["content"]) for m in sent) <= 100


def test_history_before_a_message_is_the_history_that_message_answered(alice):
    chat = conversation_create(user=alice)
    first = append(chat, "q1", "a1")
    append(chat, "q2", "a2")

    history = conversation_history(conversation=chat, new_turns=[], before=first.pk)

    assert history == [{"role": "user", "content": "q1"}]


def test_conversation_get_refuses_another_users_conversation(alice, bob):
    chat = conversation_create(user=alice)
    with pytest.raises(ApplicationError) as caught:
        conversation_get(user=bob, conversation_id=chat.pk)
    assert (caught.value.status, caught.value.code, caught.value.field) == (404, "not_found", "conversation")
    assert conversation_get(user=alice, conversation_id=str(chat.pk)) == chat


@pytest.mark.parametrize("conversation_id", [None, "abc", 10**6])
def test_conversation_get_calls_a_bad_or_unknown_id_missing(alice, conversation_id):
    with pytest.raises(ApplicationError) as caught:
        conversation_get(user=alice, conversation_id=conversation_id)
    assert (caught.value.status, caught.value.field) == (404, "conversation")


@pytest.mark.django_db(transaction=True)  # the a- functions run in a worker thread, on its own connection
async def test_the_async_twins_read_off_the_event_loop(alice):
    chat = await Conversation.objects.acreate(user=alice)
    found = await aconversation_get(user=alice, conversation_id=chat.pk)
    sent = await aconversation_history(conversation=found, new_turns=[{"role": "user", "content": "Hi"}])
    assert (found, sent) == (chat, [{"role": "user", "content": "Hi"}])
