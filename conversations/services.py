"""Conversation writes: create, rename, delete, and append an exchange (the new turns and the model's answer).

Entry points that generate (predict, the WebSocket, the chat page) go through inference, which
reads the history with `selectors.conversation_history` and appends with `exchange_append`, both
in plain data ({role, content} dicts, strings and numbers): conversations knows nothing of inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from conversations.models import Conversation, Message
from llmsite.chat import ASSISTANT, ROLES, USER
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError

TITLE_MAX_CHARS = 200
AUTO_TITLE_CHARS = 60
SEED_MAX_MESSAGES = 500  # as many as predict accepts in one request


def _title(value: str) -> str:
    title = " ".join(value.split())  # one line, however the prompt was laid out
    if len(title) > TITLE_MAX_CHARS:
        raise ApplicationError(f"the title has {len(title)} characters; the limit is {TITLE_MAX_CHARS}", field="title")
    return title


def _name_from(conversation: Conversation, turns: Sequence[dict[str, str]]) -> bool:
    """Title an untitled conversation after its first user turn; True when the title changed."""
    if conversation.title:
        return False
    first = next((t["content"] for t in turns if t["role"] == USER and t["content"].strip()), "")
    if not first:
        return False
    words = " ".join(first.split())
    conversation.title = words if len(words) <= AUTO_TITLE_CHARS else words[: AUTO_TITLE_CHARS - 1].rstrip() + "…"
    return True


def _seed_turns(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The turns a conversation starts with, as {role, content} dicts; ApplicationError naming a bad one."""
    turns = []
    for index, message in enumerate(messages):
        if message["role"] not in ROLES:
            raise ApplicationError(f"role must be one of {', '.join(ROLES)}", field=f"messages.{index}.role")
        turns.append({"role": str(message["role"]), "content": message["content"]})
    if len(turns) > SEED_MAX_MESSAGES:
        raise ApplicationError(f"at most {SEED_MAX_MESSAGES} messages to start with", field="messages")
    chars = sum(len(t["content"]) for t in turns)
    if chars > settings.LLM_MAX_PROMPT_CHARS:
        raise ApplicationError(
            f"the messages have {chars} characters; the limit is {settings.LLM_MAX_PROMPT_CHARS}", field="messages"
        )
    return turns


@transaction.atomic
def conversation_create(
    *, user: Any, title: str = "", messages: Sequence[dict[str, str]] | None = None
) -> Conversation:
    """A new conversation, optionally seeded with turns (a system prompt, an imported chat)."""
    turns = _seed_turns(messages or ())
    conversation = Conversation.objects.create(user=user, title=_title(title or ""))
    if turns:
        Message.objects.bulk_create(Message(conversation=conversation, **turn) for turn in turns)
        if _name_from(conversation, turns):
            conversation.save(update_fields=["title"])
    return conversation


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    """Set the title (whitespace collapsed; at most 200 characters, else ApplicationError 400)."""
    conversation.title = _title(title)
    # Not "updated": renaming is not activity, and the list is ordered by activity.
    conversation.save(update_fields=["title"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete the conversation and its messages; feedback on them keeps its own copy of the text."""
    conversation.delete()


@transaction.atomic
def exchange_append(
    *,
    conversation: Conversation,
    turns: list[dict[str, str]],
    answer: str,
    provider: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str,
    completion_id: str,
    chosen_model: str | None = None,
    tool_calls: Sequence[dict[str, str]] = (),
    sources: Sequence[dict[str, Any]] = (),
) -> Message:
    """Append the new turns and the model's answer; return the assistant Message (its id is what feedback rates).

    `turns` are the {role, content} dicts given to `selectors.conversation_history` as `new_turns`
    (validated by the caller). The first user turn names an untitled conversation; `chosen_model`
    (the model id the turn named) becomes the conversation's model for the turns after; `tool_calls`
    ([{id, name, arguments}]) are the calls the answer made, kept for the history; `sources` the
    passages it was grounded in, kept to show again (plain dicts, stored as given). A conversation
    deleted meanwhile is an ApplicationError 404 (field `conversation`), and nothing is written.
    """
    # Lock the row: a conversation deleted while its answer was generated is a 404, not an IntegrityError.
    if not Conversation.objects.select_for_update().filter(pk=conversation.pk).exists():
        raise ApplicationError(
            f"conversation {conversation.pk} was deleted", code=ErrorCode.NOT_FOUND, status=404, field="conversation"
        )
    rows = [Message(conversation=conversation, role=turn["role"], content=turn["content"]) for turn in turns]
    reply = Message(
        conversation=conversation,
        role=ASSISTANT,
        content=answer,
        provider=provider,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=finish_reason,
        completion_id=completion_id,
        tool_calls=[dict(call) for call in tool_calls],
        sources=[dict(source) for source in sources],
    )
    Message.objects.bulk_create([*rows, reply])
    fields = ["updated", "title"] if _name_from(conversation, turns) else ["updated"]
    if chosen_model and chosen_model != conversation.model:
        conversation.model = chosen_model
        fields.append("model")
    conversation.save(update_fields=fields)
    return reply


# For async callers (the WebSocket consumer, async views): the same write off the event loop.
aexchange_append = sync_to_async(exchange_append)
