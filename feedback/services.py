"""Feedback use cases: rate an answer, and export the ratings as training data.

- `feedback_create(...)`: a rating (+1/-1) with an optional comment, on a conversation's assistant
  message or on a prompt/response pair; comments become plain text (feedback.sanitize).
- `export_training_examples(...)`: positively rated exchanges as chat-format training examples;
  what the training app reads.
- `export_preference_pairs(...)`: answers to the same conversation rated up and down, as preference
  pairs (chosen, rejected); what DPO training reads.
- `export_review_items(...)`: rated exchanges with their rating, comment and origin, for people to read.
- `write_jsonl(...)`: either of those to a file, atomically.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from conversations.models import Message
from conversations.selectors import conversation_history
from feedback.models import Feedback
from feedback.sanitize import to_plain_text
from feedback.selectors import feedback_filter
from llmsite.chat import ROLES
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError

RATINGS = (1, -1)


def clean_comment(comment: str | None) -> str | None:
    """The comment as it is stored: plain text, or None when empty or only whitespace.

    Longer than FEEDBACK_COMMENT_MAX_CHARS (as sent) is an ApplicationError: never cut silently.
    """
    if comment is None:
        return None
    limit = settings.FEEDBACK_COMMENT_MAX_CHARS
    if len(comment) > limit:
        raise ApplicationError(f"the comment has {len(comment)} characters; the limit is {limit}", field="comment")
    text = to_plain_text(comment).strip()
    return text or None


def _check_length(value: str, field: str) -> str:
    limit = settings.LLM_MAX_PROMPT_CHARS
    if len(value) > limit:
        raise ApplicationError(f"{field} has {len(value)} characters; the limit is {limit}", field=field)
    return value


def _rated_message(user: Any, message_id: Any) -> Message:
    """The user's own assistant message; another user's is a 404 like a missing one."""
    try:
        message = Message.objects.select_related("conversation").get(pk=int(message_id), conversation__user_id=user.pk)
    except (Message.DoesNotExist, ValueError, TypeError) as exc:
        raise ApplicationError(
            f"message {message_id!r} not found", code=ErrorCode.NOT_FOUND, status=404, field="message"
        ) from exc
    if message.role != Message.Role.ASSISTANT:
        raise ApplicationError("only the model's answers (assistant messages) can be rated", field="message")
    return message


def _completion_origin(user: Any, completion: str) -> dict[str, str]:
    """{provider, model} of the user's own completion with predict's `id` (cmpl-<hex>); 404 otherwise."""
    from inference.selectors import completion_origin  # the one read feedback makes of inference: plain data

    origin = completion_origin(user=user, completion_id=completion)
    if origin is None:
        raise ApplicationError(
            f"completion {completion!r} not found", code=ErrorCode.NOT_FOUND, status=404, field="completion"
        )
    return origin


def _last_user_turn(context: list[dict[str, str]]) -> str:
    return next((m["content"] for m in reversed(context) if m["role"] == "user"), "")


@transaction.atomic
def feedback_create(
    *,
    user: Any,
    rating: int,
    comment: str | None = None,
    message: Any = None,
    prompt: str | None = None,
    response: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    completion: str | None = None,
) -> tuple[Feedback, bool]:
    """Rate an answer; return (feedback, created).

    Rate either `message` (the id of an assistant message in one of the user's conversations;
    rating it again replaces the earlier rating, created=False) or a `response` text with its
    optional `prompt` (API callers without a conversation). `completion` (predict's `id`) ties
    the rating to that request's usage record and fills provider and model. Raises
    ApplicationError: 400 for a rating other than 1/-1, a comment over the limit or a bad
    combination of fields; 404 for a message or completion that is not the user's.
    """
    if type(rating) is not int or rating not in RATINGS:
        raise ApplicationError("rating must be 1 (good) or -1 (bad)", field="rating")
    comment = clean_comment(comment)

    if message is not None:
        if any(value is not None for value in (prompt, response, completion, provider, model)):
            # The message knows its own text, provider and model; a second account of them would be ignored.
            raise ApplicationError(
                "rate a message, or a prompt/response pair (with provider, model, completion), not both",
                field="message",
            )
        rated = _rated_message(user, message)
        context = conversation_history(conversation=rated.conversation, new_turns=[], before=rated.pk)
        feedback, created = Feedback.objects.update_or_create(
            user=user,
            message=rated,
            defaults={
                "rating": rating,
                "comment": comment,
                "context": context,
                "prompt": _last_user_turn(context),
                "response": rated.content,
                "provider": rated.provider,
                "model": rated.model,
                "completion_id": rated.completion_id,
            },
        )
        return feedback, created

    if response is None:
        raise ApplicationError("give the message id you rate, or the response text (and its prompt)", field="message")
    fields: dict[str, Any] = {"provider": provider or "", "model": model or "", "completion_id": ""}
    if completion:
        fields = {**_completion_origin(user, completion), "completion_id": completion}
    prompt = _check_length(prompt or "", "prompt")
    feedback = Feedback.objects.create(
        user=user,
        rating=rating,
        comment=comment,
        context=[{"role": "user", "content": prompt}] if prompt else [],
        prompt=prompt,
        response=_check_length(response, "response"),
        **fields,
    )
    return feedback, True


# --- export --------------------------------------------------------------------------------------


def _chat(feedback: Feedback) -> list[dict[str, str]] | None:
    """The rated exchange as chat messages ending with the answer; None when it cannot teach anything."""
    turns = [
        {"role": m["role"], "content": m["content"]}
        for m in feedback.context or []
        if isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
    ]
    first_user = next((i for i, m in enumerate(turns) if m["role"] == "user"), None)
    if first_user is None or not feedback.response.strip():
        return None
    # What training.datasets.chat_example accepts: a system or user turn first, no empty answers.
    turns = [m for i, m in enumerate(turns) if m["role"] != "assistant" or i > first_user]
    if any(m["role"] == "assistant" and not m["content"].strip() for m in turns):
        return None
    return [*turns, {"role": "assistant", "content": feedback.response}]


def _rows(
    rating: int, progress: Callable[[], None] | None, filters: dict[str, Any]
) -> Iterator[tuple[Feedback, list[dict[str, str]] | None]]:
    rows = feedback_filter(Feedback.objects.select_related("user"), rating=rating, **filters).order_by("created", "id")
    for row in rows.iterator(chunk_size=500):
        if progress is not None:
            progress()
        yield row, _chat(row)


def export_count(*, rating: int | None = None, **filters: Any) -> int:
    """How many feedback rows an export with these filters reads (for progress bars)."""
    return feedback_filter(Feedback.objects.all(), rating=rating, **filters).count()


def export_training_examples(
    *,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
    provider: str | None = None,
    model: str | None = None,
    progress: Callable[[], None] | None = None,
) -> Iterator[dict[str, list[dict[str, str]]]]:
    """Positively rated exchanges as `{"messages": [{"role", "content"}, ...]}`, oldest rating first.

    Each example is the conversation as the model saw it (system turns, earlier turns) and ends
    with the rated assistant answer; the first message is a system or user one, there is at least
    one user turn and no assistant turn is empty (assistant turns before the first user turn are
    dropped). Exchanges that cannot meet that are skipped; identical examples appear once. Extra
    keys are never added, so each dict can be written as one JSONL line as it is. `since`/`until` (dates
    or datetimes, inclusive) and `provider`/`model` narrow the feedback read; `progress`, if
    given, is called once per feedback row read. Lazy: rows stream from the database.
    """
    filters = {"since": since, "until": until, "provider": provider, "model": model}
    seen: set[str] = set()
    for _row, chat in _rows(1, progress, filters):
        if chat is None:
            continue
        digest = hashlib.sha256(json.dumps(chat, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        yield {"messages": chat}


def export_preference_pairs(
    *,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Preference pairs from ratings: answers to the same conversation, one rated up and another rated down.

    Each pair is `{"messages": [...ending with the user turn], "chosen": str, "rejected": str,
    "source": "feedback"}`, what training.datasets.preference_pair accepts. The conversation is the
    rated exchange without its answer (as `export_training_examples` builds it); every answer rated
    up pairs with every different answer to it rated down, each pair once, in the order the ratings
    came. Filters as in `export_training_examples`. Reads every rating in range before yielding.
    """
    filters = {"since": since, "until": until, "provider": provider, "model": model}
    answers: dict[str, dict[int, list[str]]] = {}
    prompts: dict[str, list[dict[str, str]]] = {}
    for rating in RATINGS:
        for _row, chat in _rows(rating, None, filters):
            if chat is None or chat[-2]["role"] != "user":
                continue
            prompt = chat[:-1]
            key = json.dumps(prompt, sort_keys=True, ensure_ascii=False)
            prompts.setdefault(key, prompt)
            rated = answers.setdefault(key, {1: [], -1: []})[rating]
            if chat[-1]["content"] not in rated:
                rated.append(chat[-1]["content"])
    for key, rated in answers.items():
        for chosen in rated[1]:
            for rejected in rated[-1]:
                if chosen != rejected:
                    yield {"messages": prompts[key], "chosen": chosen, "rejected": rejected, "source": "feedback"}


def export_review_items(
    *,
    rating: int = -1,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
    provider: str | None = None,
    model: str | None = None,
    progress: Callable[[], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Rated exchanges (by default the negative ones) for people to review, oldest first.

    Each item: `{"messages": [...] (as in export_training_examples, the answer last), "rating",
    "comment", "provider", "model", "feedback_id", "message_id", "user", "created"}`; exchanges
    without a user turn are kept here (with just the answer) because the comment may still say
    what went wrong.
    """
    filters = {"since": since, "until": until, "provider": provider, "model": model}
    for row, chat in _rows(rating, progress, filters):
        yield {
            "messages": chat or [{"role": "assistant", "content": row.response}],
            "rating": row.rating,
            "comment": row.comment,
            "provider": row.provider,
            "model": row.model,
            "feedback_id": row.pk,
            "message_id": row.message_id,
            "user": row.user.get_username(),
            "created": row.created.isoformat(),
        }


def write_jsonl(items: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write one JSON object per line to `path` (replaced atomically: never a half-written file); return the count."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps(item, ensure_ascii=False) + "\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
