"""Conversations: a user's chats kept as history, one function per use case.

Entry points that generate (predict, the WebSocket, the chat page) append to a conversation
in three steps, all sync (async callers use the `a`-prefixed twins):

    conversation = conversation_get(user=request.user, conversation_id=data["conversation"])  # 404 if not theirs
    messages = conversation_input(conversation=conversation, prompt=prompt, messages=new_messages)
    result = services.complete(user=request.user, messages=messages, ...)
    record_exchange(conversation=conversation, prompt=prompt, messages=new_messages, result=result)

With a conversation, `prompt` / `messages` are the *new* turns only: the stored history goes in front.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Count, QuerySet

from accounts.permissions import owned_by
from inference.models import Conversation, Message
from llmsite.errors import ApplicationError

if TYPE_CHECKING:
    from inference.services import CompletionResult

TITLE_MAX_CHARS = 200
AUTO_TITLE_CHARS = 60
SEED_MAX_MESSAGES = 500  # as many as predict accepts in one request
ROLES = tuple(Message.Role.values)

ChatMessage = dict[str, str]


def _title(value: str) -> str:
    title = " ".join(value.split())  # one line, however the prompt was laid out
    if len(title) > TITLE_MAX_CHARS:
        raise ApplicationError(f"the title has {len(title)} characters; the limit is {TITLE_MAX_CHARS}", field="title")
    return title


def _name_from(conversation: Conversation, turns: list[ChatMessage]) -> bool:
    """Title an untitled conversation after its first user turn; True when the title changed."""
    if conversation.title:
        return False
    first = next((t["content"] for t in turns if t["role"] == Message.Role.USER and t["content"].strip()), "")
    if not first:
        return False
    words = " ".join(first.split())
    conversation.title = words if len(words) <= AUTO_TITLE_CHARS else words[: AUTO_TITLE_CHARS - 1].rstrip() + "…"
    return True


def _new_turns(prompt: str | None, messages: Sequence[Any] | None) -> list[ChatMessage]:
    """The turns a request adds, as {role, content} dicts; exactly one of prompt or messages."""
    if (prompt is None) == (messages is None):
        raise ApplicationError("give exactly one of prompt or messages", field="prompt")
    if prompt is not None:
        return [{"role": Message.Role.USER.value, "content": prompt}]
    turns = []
    for index, message in enumerate(messages or ()):
        # Dicts from serializers, or inference.providers.base.Message dataclasses.
        role = message["role"] if isinstance(message, dict) else message.role
        content = message["content"] if isinstance(message, dict) else message.content
        if role not in ROLES:
            raise ApplicationError(f"role must be one of {', '.join(ROLES)}", field=f"messages.{index}.role")
        turns.append({"role": str(role), "content": content})
    if not turns:
        raise ApplicationError("messages must not be empty", field="messages")
    return turns


# --- reads ---------------------------------------------------------------------------------------


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
            f"conversation {conversation_id!r} not found", code="not_found", status=404, field="conversation"
        ) from exc


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    """Every message of the conversation, oldest first."""
    return conversation.messages.order_by("id")


def history_messages(
    *, conversation: Conversation, reserve_chars: int = 0, before: int | None = None
) -> list[ChatMessage]:
    """The stored turns to send to the model before a new one, as [{role, content}], oldest first.

    System messages are always kept (they set the assistant's behaviour); of the others, the most
    recent CONVERSATION_HISTORY_MAX_MESSAGES that fit in LLM_MAX_PROMPT_CHARS minus `reserve_chars`
    (the new turn's length), so a long chat keeps working instead of being refused as too long.
    Token-level context limits are still the provider's to enforce (prompt_too_long).
    With `before` (a message id), the history as it stood when that message was written.
    """
    stored = conversation_messages(conversation=conversation)
    if before is not None:
        stored = stored.filter(id__lt=before)
    rows = list(stored.values_list("role", "content"))
    system = [i for i, (role, _) in enumerate(rows) if role == Message.Role.SYSTEM]
    others = [i for i, (role, _) in enumerate(rows) if role != Message.Role.SYSTEM]
    budget = settings.LLM_MAX_PROMPT_CHARS - reserve_chars - sum(len(rows[i][1]) for i in system)
    kept: list[int] = []
    for index in reversed(others):
        size = len(rows[index][1])
        if len(kept) >= settings.CONVERSATION_HISTORY_MAX_MESSAGES or size > budget:
            break
        budget -= size
        kept.append(index)
    kept.reverse()
    if len(kept) < len(others):
        # Trimmed: an answer whose question was cut off would open the history; chat templates expect a user turn.
        while kept and rows[kept[0]][0] == Message.Role.ASSISTANT:
            kept.pop(0)
    return [{"role": rows[i][0], "content": rows[i][1]} for i in sorted(system + kept)]


def conversation_input(
    *, conversation: Conversation, prompt: str | None = None, messages: Sequence[Any] | None = None
) -> list[ChatMessage]:
    """History plus the new turn(s): what to pass as `messages=` to `services.complete(_stream)`."""
    turns = _new_turns(prompt, messages)
    reserve = sum(len(m["content"]) for m in turns)
    return history_messages(conversation=conversation, reserve_chars=reserve) + turns


# --- writes --------------------------------------------------------------------------------------


@transaction.atomic
def conversation_create(*, user: Any, title: str = "", messages: Sequence[Any] | None = None) -> Conversation:
    """A new conversation, optionally seeded with turns (a system prompt, an imported chat)."""
    turns = _new_turns(None, messages) if messages else []
    if len(turns) > SEED_MAX_MESSAGES:
        raise ApplicationError(f"at most {SEED_MAX_MESSAGES} messages to start with", field="messages")
    chars = sum(len(t["content"]) for t in turns)
    if chars > settings.LLM_MAX_PROMPT_CHARS:
        raise ApplicationError(
            f"the messages have {chars} characters; the limit is {settings.LLM_MAX_PROMPT_CHARS}", field="messages"
        )
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
def record_exchange(
    *,
    conversation: Conversation,
    result: CompletionResult,
    prompt: str | None = None,
    messages: Sequence[Any] | None = None,
) -> Message:
    """Append the new turn(s) and the model's answer; return the assistant Message (its id is what feedback rates).

    `prompt`/`messages` are the same new turns given to `conversation_input`; `result` is the
    `inference.services.CompletionResult` (text, provider, model, usage, id, finish_reason).
    The first user turn names an untitled conversation.
    """
    turns = _new_turns(prompt, messages)
    # Lock the row: a conversation deleted while its answer was generated is a 404, not an IntegrityError.
    if not Conversation.objects.select_for_update().filter(pk=conversation.pk).exists():
        raise ApplicationError(
            f"conversation {conversation.pk} was deleted", code="not_found", status=404, field="conversation"
        )
    rows = [Message(conversation=conversation, **turn) for turn in turns]
    answer = Message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content=result.text,
        provider=result.provider,
        model=result.model,
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        finish_reason=result.finish_reason or "",
        completion_id=result.id or "",
    )
    Message.objects.bulk_create([*rows, answer])
    conversation.save(update_fields=["updated", "title"] if _name_from(conversation, turns) else ["updated"])
    return answer


# For async callers (the WebSocket consumer, async views): the same functions off the event loop.
aconversation_get = sync_to_async(conversation_get)
aconversation_input = sync_to_async(conversation_input)
arecord_exchange = sync_to_async(record_exchange)
