"""Arena use cases: start a battle, run its two answers at the same time, vote, export.

- `battle_start(...)`: pick the two models (named, or two at random from the pool) and create the row.
- `battle_run(...)`: an async iterator of `Token` / `SideDone` / `SideFailed` events from both answers,
  generated concurrently through `inference.services.complete_stream` (usage metered, the pool
  batches them); the row is completed when both end, and closing the iterator cancels both.
- `battle_vote(...)`: the user's one vote; reveals the models.
- `preference_pairs()`: voted battles as preference pairs (chosen, rejected) for preference training.
- `battle_export_rows()`: voted battles with their exchange, one dict each (JSONL export).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.utils import timezone

from arena import selectors
from arena.models import Battle
from inference.protocol import CompletionRequest
from inference.providers.base import InvalidParameter, TextDelta
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError, ServiceUnavailable

logger = logging.getLogger(__name__)

SIDES = ("a", "b")
MAX_PROMPT_CHARS = 8000
SOURCE = "arena"  # the usage records' source, and the preference pairs'


@dataclass(frozen=True)
class Token:
    side: str
    text: str


@dataclass(frozen=True)
class SideDone:
    side: str
    finish_reason: str


@dataclass(frozen=True)
class SideFailed:
    side: str
    error: ApplicationError


BattleEvent = Token | SideDone | SideFailed


def battle_start(*, user: Any, prompt: str, models: list[str] | None = None, meter: Any = None) -> Battle:
    """A new battle of the user's: `models` (two distinct ids of the pool), else two picked at random.

    Raises ApplicationError: 400 naming `models` for an id the pool cannot serve (or the API key
    may not call) or the same id twice; 409 when fewer than two models can answer.
    """
    available = selectors.arena_models(meter=meter)
    if models is not None:
        if len(models) != 2 or models[0] == models[1]:
            raise ApplicationError("models must be two different model ids", field="models")
        unknown = [m for m in models if m not in available]
        if unknown:
            raise ApplicationError(
                f"the arena cannot use {unknown[0]!r}; it can use: {', '.join(available) or 'none'}", field="models"
            )
        model_a, model_b = models
    else:
        if len(available) < 2:
            raise ApplicationError(
                f"the arena needs two models that can answer; this site has {len(available)}",
                code=ErrorCode.CONFLICT,
                status=409,
            )
        model_a, model_b = random.SystemRandom().sample(available, 2)  # which side each lands on is random too
    return Battle.objects.create(user=user, prompt=prompt, model_a=model_a, model_b=model_b, blind=models is None)


@dataclass
class _Side:
    name: str
    model: str
    parts: list[str] = dataclasses.field(default_factory=list)
    finish_reason: str = ""
    error: str = ""


def battle_request(*, prompt: str, max_new_tokens: int | None = None) -> CompletionRequest:
    """What both sides are asked (each then names its model); ApplicationError naming the field when out of bounds."""
    if not prompt.strip():
        raise ApplicationError("prompt must not be blank", field="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ApplicationError(f"prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}", field="prompt")
    fields: dict[str, Any] = {"prompt": prompt}
    if max_new_tokens is not None:
        fields["max_new_tokens"] = max_new_tokens
    try:
        return CompletionRequest.from_fields(fields)
    except InvalidParameter as exc:
        field = "max_tokens" if exc.field == "max_new_tokens" else exc.field  # the arena's name for it
        raise ApplicationError(exc.message.replace(exc.field, field), code=exc.code, field=field) from exc


async def battle_run(
    battle: Battle, request: CompletionRequest, *, user: Any, meter: Any = None
) -> AsyncIterator[BattleEvent]:
    """Both sides' answers to `request` (see `battle_request`), their events interleaved as they come.

    Ends after a SideDone or SideFailed of each side.

    One side failing (its model unavailable, a fallback about to answer in its place, a provider
    error) ends that side only. Closing the iterator early (a client gone) cancels both answers;
    however it ends, the battle row is completed with what each side wrote.
    """
    from inference.services import complete_stream
    from usage.services import Meter

    sides = {"a": _Side("a", battle.model_a), "b": _Side("b", battle.model_b)}
    queue: asyncio.Queue[BattleEvent] = asyncio.Queue()

    def refuse_fallback(model: str) -> None:
        # A fallback answering for the battle's model would put another model in the battle.
        raise ServiceUnavailable("the model could not answer (its fallback is not used in the arena)")

    async def answer(side: _Side) -> None:
        # Each side its own meter (who pays is the same): they run at once and a meter keeps the last limits.
        side_meter = Meter(user=meter.user, api_key=meter.api_key) if meter is not None else None
        asked = dataclasses.replace(request, model=side.model)
        try:
            events = complete_stream(asked, user=user, source=SOURCE, meter=side_meter, on_fallback=refuse_fallback)
            async for event in events:
                if isinstance(event, TextDelta):
                    if event.text:
                        side.parts.append(event.text)
                        queue.put_nowait(Token(side.name, event.text))
                elif hasattr(event, "finish_reason"):  # the CompletionResult ends the stream
                    side.finish_reason = event.finish_reason
            queue.put_nowait(SideDone(side.name, side.finish_reason))
        except ApplicationError as exc:
            side.finish_reason, side.error = "error", exc.message
            queue.put_nowait(SideFailed(side.name, exc))
        except asyncio.CancelledError:
            side.finish_reason = "cancelled"
            raise
        except Exception:  # a bug must not take the other side down with it
            logger.exception("arena battle %s: side %s failed", battle.pk, side.name)
            side.finish_reason, side.error = "error", "the answer failed"
            failure = ApplicationError("the answer failed", code=ErrorCode.SERVER_ERROR, status=500)
            queue.put_nowait(SideFailed(side.name, failure))

    async def finish() -> None:
        """Stop what still runs, then write the row (even while this iterator is being cancelled)."""
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for side in sides.values():
            side.finish_reason = side.finish_reason or "cancelled"
        saving = asyncio.ensure_future(sync_to_async(battle_finish)(battle=battle, sides=sides))
        try:
            await asyncio.shield(saving)
        except asyncio.CancelledError:
            await saving
            raise

    tasks = [asyncio.create_task(answer(side)) for side in sides.values()]
    finished = False
    try:
        ended = 0
        while ended < len(tasks):
            event = await queue.get()
            if not isinstance(event, Token):
                ended += 1
            if ended == len(tasks):
                # Written before the last event leaves: a client that votes as soon as it has it finds the row done.
                finished = True
                await finish()
            yield event
    finally:
        if not finished:
            await finish()


def battle_finish(*, battle: Battle, sides: dict[str, Any]) -> None:
    """Write both answers, their finish reasons and errors; the battle can then be voted on."""
    for name, side in sides.items():
        setattr(battle, f"answer_{name}", "".join(side.parts))
        setattr(battle, f"finish_reason_{name}", side.finish_reason)
        setattr(battle, f"error_{name}", side.error)
    battle.finished = timezone.now()
    battle.save(
        update_fields=[
            "answer_a",
            "answer_b",
            "finish_reason_a",
            "finish_reason_b",
            "error_a",
            "error_b",
            "finished",
        ]
    )


def battle_vote(*, user: Any, battle_id: Any, vote: str) -> Battle:
    """Record the user's vote on their battle (once); the returned battle names its models.

    Raises ApplicationError: 404 for a battle that is not the user's; 409 while the answers are
    being written, when a side failed or was cancelled (nothing to compare), or when already voted.
    """
    if vote not in Battle.Vote.values:
        raise ApplicationError(f"vote must be one of {', '.join(Battle.Vote.values)}", field="vote")
    battle = selectors.battle_get(user=user, battle_id=battle_id)
    if battle.finished is None:
        raise ApplicationError(
            "the answers are still being written; vote once both are done", code=ErrorCode.CONFLICT, status=409
        )
    if not battle.comparable:
        raise ApplicationError(
            "an answer of this battle failed or was stopped: there is nothing to compare",
            code=ErrorCode.CONFLICT,
            status=409,
        )
    # One conditional UPDATE: two votes racing cannot both win.
    now = timezone.now()
    if not Battle.objects.filter(pk=battle.pk, vote="").update(vote=vote, voted=now):
        raise ApplicationError("you already voted on this battle", code=ErrorCode.CONFLICT, status=409)
    battle.vote, battle.voted = vote, now
    return battle


def preference_pairs() -> list[dict[str, Any]]:
    """Voted battles as preference pairs, oldest first: the winner's answer chosen, the loser's rejected.

    `{"messages": [{"role": "user", "content": prompt}], "chosen", "rejected", "source": "arena"}`.
    Ties and both_bad give no pair, nor does a battle whose two answers are the same or one is blank.
    Votes on battles whose models the user named count here (a preference is a preference), though
    not on the leaderboard.
    """
    pairs = []
    for battle in selectors.voted_battles():
        if battle.vote not in (Battle.Vote.A, Battle.Vote.B):
            continue
        chosen, rejected = (
            (battle.answer_a, battle.answer_b) if battle.vote == Battle.Vote.A else (battle.answer_b, battle.answer_a)
        )
        if not chosen.strip() or not rejected.strip() or chosen == rejected:
            continue
        pairs.append(
            {
                "messages": [{"role": "user", "content": battle.prompt}],
                "chosen": chosen,
                "rejected": rejected,
                "source": SOURCE,
            }
        )
    return pairs


def battle_export_rows() -> Iterator[dict[str, Any]]:
    """Every voted battle with its exchange and vote, oldest first (one JSONL line each)."""
    for battle in selectors.voted_battles():
        yield {
            "id": battle.pk,
            "created": battle.created.isoformat(),
            "voted": battle.voted.isoformat() if battle.voted else None,
            "user": battle.user.username,
            "blind": battle.blind,
            "messages": [{"role": "user", "content": battle.prompt}],
            "model_a": battle.model_a,
            "model_b": battle.model_b,
            "answer_a": battle.answer_a,
            "answer_b": battle.answer_b,
            "finish_reason_a": battle.finish_reason_a,
            "finish_reason_b": battle.finish_reason_b,
            "vote": battle.vote,
        }


def jsonl_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"
