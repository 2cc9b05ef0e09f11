"""The leaderboard's maths on simulated votes (plain Python: no database)."""

from __future__ import annotations

import random

import pytest

from arena.ratings import Comparison, bradley_terry, leaderboard

# Three models whose true ratings are 200 points apart: A beats B (and B beats C) 76 % of the time.
TRUE = {"model-a": 1200.0, "model-b": 1000.0, "model-c": 800.0}


def simulated(per_pair: int, seed: int = 1) -> list[Comparison]:
    """Votes as the Bradley-Terry model says they fall, with one in ten a tie."""
    rng = random.Random(seed)  # noqa: S311 - simulated votes, reproducible
    names = list(TRUE)
    votes = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            p_first = 1 / (1 + 10 ** ((TRUE[second] - TRUE[first]) / 400))
            for n in range(per_pair):
                a, b = (first, second) if n % 2 else (second, first)  # either side of the screen
                if rng.random() < 0.1:
                    votes.append(Comparison(a, b, 0.5))
                    continue
                first_won = rng.random() < p_first
                votes.append(Comparison(a, b, 1.0 if (a == first) == first_won else 0.0))
    return votes


def test_it_recovers_the_ordering_of_simulated_votes_with_separated_intervals():
    table = leaderboard(simulated(300))
    assert [row.model for row in table] == ["model-a", "model-b", "model-c"]
    a, b, c = table
    # Clearly separated models: their 95 % intervals do not overlap.
    assert a.ci_low > b.ci_high and b.ci_low > c.ci_high
    for row in table:
        assert row.ci_low <= row.rating <= row.ci_high
        assert row.votes == 600
    # Roughly the true gaps (the scale is Elo's), and anchored at a mean of 1000.
    assert 120 < a.rating - b.rating < 280 and 120 < b.rating - c.rating < 280
    assert sum(row.rating for row in table) / 3 == pytest.approx(1000.0)


def test_it_gives_the_same_table_for_the_same_votes_in_any_order():
    votes = simulated(40)
    shuffled = list(votes)
    random.Random(5).shuffle(shuffled)  # noqa: S311
    assert leaderboard(votes) == leaderboard(shuffled)


def test_a_tie_counts_half_a_win_each_way():
    ratings = bradley_terry([Comparison("x", "y", 0.5)])
    assert ratings["x"] == pytest.approx(ratings["y"])
    # One win and one loss is the same evidence as one tie each way.
    assert bradley_terry([Comparison("x", "y", 1.0), Comparison("x", "y", 0.0)])["x"] == pytest.approx(1000.0)


def test_a_model_that_won_every_vote_has_a_finite_rating():
    ratings = bradley_terry([Comparison("x", "y", 1.0)] * 20)
    assert 1000 < ratings["x"] < 2500 and ratings["y"] == pytest.approx(2000 - ratings["x"])


def test_no_votes_give_an_empty_table_and_a_bad_score_is_refused():
    assert leaderboard([]) == []
    with pytest.raises(ValueError):
        bradley_terry([Comparison("x", "y", 0.3)])
    with pytest.raises(ValueError):
        bradley_terry([Comparison("x", "x", 1.0)])
