"""Arena reads: the models a battle may use, one user's battle, the leaderboard, the voted battles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from arena import ratings
from arena.models import Battle
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError

SCORES = {Battle.Vote.A: 1.0, Battle.Vote.B: 0.0, Battle.Vote.TIE: 0.5}  # both_bad is no comparison


def arena_models(*, meter: Any = None) -> list[str]:
    """Ids of the pool's models that can answer now (local folders, configured remote models), default first.

    The embedding model and models marked unavailable are left out, and so are those the caller's
    API key may not call.
    """
    from inference.selectors import models_list

    return [
        row["id"]
        for row in models_list()
        if row["kind"] in ("local", "remote")
        and row["state"] != "unavailable"
        and (meter is None or meter.allows_model(row["id"]))
    ]


def battle_get(*, user: Any, battle_id: Any) -> Battle:
    """The user's own battle; another user's is a 404 like a missing one."""
    try:
        return Battle.objects.get(pk=int(battle_id), user_id=user.pk)
    except (Battle.DoesNotExist, ValueError, TypeError) as exc:
        raise ApplicationError(f"battle {battle_id!r} not found", code=ErrorCode.NOT_FOUND, status=404) from exc


def voted_battles() -> Iterator[Battle]:
    """Every voted battle, oldest first."""
    return Battle.objects.exclude(vote="").select_related("user").order_by("created", "id").iterator(chunk_size=500)


def comparisons() -> list[ratings.Comparison]:
    """The blind votes that compare two answers (a, b or tie), as the ratings maths takes them."""
    rows = Battle.objects.filter(blind=True, vote__in=list(SCORES)).values_list("model_a", "model_b", "vote")
    return [ratings.Comparison(a, b, SCORES[vote]) for a, b, vote in rows.iterator(chunk_size=2000)]


def leaderboard() -> list[dict[str, Any]]:
    """[{model, rating, ci_low, ci_high, votes}], best first (docs/api.md, Arena)."""
    table = ratings.leaderboard(comparisons())  # fixed rounds and seed: the same votes give the same table
    return [row.as_dict() for row in table]
