"""Conversation reads: a user's list, one conversation (404 if not theirs), its messages, the history for a prompt."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Count, QuerySet

from accounts.permissions import owned_by
from conversations.models import Conversation, Message
from llmsite.chat import ASSISTANT, SYSTEM
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError


def conversation_list(*, user: Any) -> QuerySet[Conversation]:
    """The user's conversations, most recently active first, with `messages_count`."""
    return (
        owned_by(Conversation.objects.all(), user)
        .annotate(messages_count=Count("messages"))
        .order_by("-updated", "-id")
    )


def conversation_get(*, user: Any, conversation_id: Any) -> Conversation:
    """The user's conversation with that id; ApplicationError 404 (field `conversation`) otherwise.

    Another user's conversation looks exactly like a missing one.
    """
    try:
        return owned_by(Conversation.objects.all(), user).get(pk=int(conversation_id))
    except (Conversation.DoesNotExist, ValueError, TypeError) as exc:
        raise ApplicationError(
            f"conversation {conversation_id!r} not found", code=ErrorCode.NOT_FOUND, status=404, field="conversation"
        ) from exc


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    """Every message of the conversation, oldest first."""
    return conversation.messages.order_by("id")


def conversation_history(
    *, conversation: Conversation, new_turns: list[dict[str, str]], before: int | None = None
) -> list[dict[str, Any]]:
    """The stored turns to send to the model, then `new_turns`, as [{role, content}], oldest first.

    An assistant turn that called tools carries them too, as `tool_calls` [{id, name, arguments}], so the
    model sees what it called (their arguments count towards LLM_MAX_PROMPT_CHARS).

    System messages are always kept (they set the assistant's behaviour); of the others, the most
    recent CONVERSATION_HISTORY_MAX_MESSAGES that fit in LLM_MAX_PROMPT_CHARS together with the new
    turns, so a long chat keeps working instead of being refused as too long. Token-level context
    limits are still the provider's to enforce (prompt_too_long). With `before` (a message id), the
    history as it stood when that message was written. `new_turns` are not checked here: the caller
    validated them.
    """
    stored = conversation_messages(conversation=conversation)
    if before is not None:
        stored = stored.filter(id__lt=before)
    rows = list(stored.values_list("role", "content", "tool_calls"))
    system = [i for i, (role, _, _) in enumerate(rows) if role == SYSTEM]
    others = [i for i, (role, _, _) in enumerate(rows) if role != SYSTEM]
    reserve = sum(len(turn["content"]) for turn in new_turns)
    budget = settings.LLM_MAX_PROMPT_CHARS - reserve - sum(len(rows[i][1]) for i in system)
    kept: list[int] = []
    for index in reversed(others):
        size = len(rows[index][1]) + sum(len(call["arguments"]) for call in rows[index][2] or ())
        if len(kept) >= settings.CONVERSATION_HISTORY_MAX_MESSAGES or size > budget:
            break
        budget -= size
        kept.append(index)
    kept.reverse()
    if len(kept) < len(others):
        # Trimmed: an answer whose question was cut off would open the history; chat templates expect a user turn.
        while kept and rows[kept[0]][0] == ASSISTANT:
            kept.pop(0)
    history = [_turn(*rows[i]) for i in sorted(system + kept)]
    return history + [{"role": turn["role"], "content": turn["content"]} for turn in new_turns]


def _turn(role: str, content: str, tool_calls: list[dict[str, str]] | None) -> dict[str, Any]:
    turn: dict[str, Any] = {"role": role, "content": content}
    if tool_calls:
        turn["tool_calls"] = [{"id": c["id"], "name": c["name"], "arguments": c["arguments"]} for c in tool_calls]
    return turn


# For async callers (the WebSocket consumer, async views): the same reads off the event loop.
aconversation_get = sync_to_async(conversation_get)
aconversation_history = sync_to_async(conversation_history)
