"""The response cache, as staff see it: counters, and clearing it."""

from __future__ import annotations

from typing import Any

from inference import cache


def cache_stats() -> dict[str, Any]:
    """{hits, misses, hit_rate, entries, max_entries, ttl} of the response cache."""
    return cache.stats()


def cache_clear() -> None:
    """Drop every cached answer and reset the counters."""
    cache.clear()
