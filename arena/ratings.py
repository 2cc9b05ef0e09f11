"""Arena ratings: Bradley-Terry maximum likelihood with bootstrap confidence intervals (plain Python, no Django).

A comparison is one voted battle: model `a` against model `b`, `score_a` 1 (a won), 0 (b won) or
0.5 (a tie: half a win each way). The Bradley-Terry model says a beats b with probability
p_a / (p_a + p_b); the strengths that make the votes likeliest are found with scipy's L-BFGS on the
log-strengths (a small ridge prior keeps a model that won every comparison finite). Ratings are
shown on an Elo-like scale, 1000 + 400·log10(strength), anchored so the models' mean is 1000: the
same votes always give the same table. The 95 % intervals come from resampling the comparisons
with replacement a bounded number of times, with a fixed seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

BASE = 1000.0  # the rating of an average model
SCALE = 400.0 / math.log(10)  # natural log-strength to Elo points: 400·log10(strength)
RIDGE = 0.01  # prior on the log-strengths: finite ratings for a model that won (or lost) everything
ROUNDS = 200  # bootstrap resamples
SEED = 0


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    score_a: float  # 1: a won, 0: b won, 0.5: a tie


@dataclass(frozen=True)
class Rating:
    model: str
    rating: float
    ci_low: float
    ci_high: float
    votes: int  # comparisons the model took part in

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "rating": round(self.rating, 1),
            "ci_low": round(self.ci_low, 1),
            "ci_high": round(self.ci_high, 1),
            "votes": self.votes,
        }


def _wins(pairs: np.ndarray, scores: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """wins[i, j]: how often model i beat model j (ties half each way), each comparison counted `weights` times."""
    wins = np.zeros((size, size))
    np.add.at(wins, (pairs[:, 0], pairs[:, 1]), weights * scores)
    np.add.at(wins, (pairs[:, 1], pairs[:, 0]), weights * (1.0 - scores))
    return wins


def _fit(wins: np.ndarray) -> np.ndarray:
    """The log-strengths that maximise the likelihood of `wins` (with the ridge prior), mean zero."""
    size = wins.shape[0]
    games = wins + wins.T

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta[:, None] - theta[None, :]
        # log P(i beats j) = -log(1 + exp(-(θi - θj))), summed over i's wins against j.
        log_p = -np.logaddexp(0.0, -diff)
        p = np.exp(log_p)
        value = -(wins * log_p).sum() + RIDGE * (theta @ theta)
        # d/dθi: Σj [wins_ij (1 - p_ij)] - Σj [wins_ji (1 - p_ji)] = Σj wins_ij - games_ij p_ij.
        grad = -(wins.sum(axis=1) - (games * p).sum(axis=1)) + 2 * RIDGE * theta
        return float(value), grad

    result = minimize(loss, np.zeros(size), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "maxiter": 1000})
    theta = result.x
    return theta - theta.mean()


def _index(comparisons: Sequence[Comparison]) -> tuple[list[str], np.ndarray, np.ndarray]:
    models = sorted({c.a for c in comparisons} | {c.b for c in comparisons})
    position = {name: i for i, name in enumerate(models)}
    pairs = np.array([(position[c.a], position[c.b]) for c in comparisons], dtype=np.int64).reshape(-1, 2)
    scores = np.array([c.score_a for c in comparisons], dtype=float)
    return models, pairs, scores


def bradley_terry(comparisons: Sequence[Comparison]) -> dict[str, float]:
    """Each model's rating on the Elo-like scale (mean 1000); {} without comparisons."""
    for c in comparisons:
        if c.score_a not in (0.0, 0.5, 1.0) or c.a == c.b:
            raise ValueError(f"not a comparison: {c}")
    if not comparisons:
        return {}
    models, pairs, scores = _index(comparisons)
    theta = _fit(_wins(pairs, scores, np.ones(len(scores)), len(models)))
    return {name: BASE + SCALE * float(t) for name, t in zip(models, theta, strict=True)}


def leaderboard(
    comparisons: Sequence[Comparison], *, rounds: int = ROUNDS, seed: int = SEED, confidence: float = 0.95
) -> list[Rating]:
    """Every compared model's rating with its bootstrap interval and vote count, best first (ties by name).

    Each resample draws as many comparisons as there are, with replacement (a multinomial
    weighting of the comparisons), and refits; a model's interval is the middle `confidence` of
    its refitted ratings. Deterministic for the same comparisons in any order, `rounds` and `seed`.
    """
    ratings = bradley_terry(comparisons)
    if not ratings:
        return []
    ordered = sorted(comparisons, key=lambda c: (c.a, c.b, c.score_a))  # order-independent resampling
    models, pairs, scores = _index(ordered)
    votes = np.bincount(pairs.ravel(), minlength=len(models))
    rng = np.random.default_rng(seed)
    samples = np.full((rounds, len(models)), np.nan)
    for r in range(rounds):
        weights = rng.multinomial(len(scores), np.full(len(scores), 1.0 / len(scores))).astype(float)
        present = np.bincount(pairs.ravel(), weights=np.repeat(weights, 2), minlength=len(models)) > 0
        theta = _fit(_wins(pairs, scores, weights, len(models)))
        # Anchor each resample on the models it saw; an absent one has no rating in it.
        theta = theta - theta[present].mean()
        samples[r, present] = BASE + SCALE * theta[present]
    tail = (1.0 - confidence) / 2 * 100
    low = np.nanpercentile(samples, tail, axis=0)
    high = np.nanpercentile(samples, 100 - tail, axis=0)
    rows = [Rating(name, ratings[name], float(low[i]), float(high[i]), int(votes[i])) for i, name in enumerate(models)]
    return sorted(rows, key=lambda row: (-row.rating, row.model))
