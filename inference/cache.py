"""The response cache on `caches["responses"]`: keys, hit/miss counters, stats, clearing.

Only deterministic requests are cached (greedy, or sampling with a seed). The key is the
sha256 of everything that determines the output: provider, model, the weights' identity,
the exact input after templating, and the sampling parameters (by name, so order never
matters). A different model or a retrained checkpoint therefore never shares an entry.
The hit/miss counters live in the same cache, so every process sharing it shares them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.cache import caches

ALIAS = "responses"
ENTRY_PREFIX = "resp:"
HITS, MISSES = "stats:hits", "stats:misses"


def _cache() -> Any:
    return caches[ALIAS]


def response_key(*, provider: str, model: str, identity: str, rendered: str, params: dict[str, Any]) -> str:
    params = {**params, "stop": sorted(params.get("stop") or [])}  # stop strings act as a set
    material = json.dumps(
        {"provider": provider, "model": model, "identity": identity, "input": rendered, "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return ENTRY_PREFIX + hashlib.sha256(material.encode()).hexdigest()


def get(key: str) -> dict[str, Any] | None:
    value = _cache().get(key)
    _count(HITS if value is not None else MISSES)
    return value


def put(key: str, value: dict[str, Any]) -> None:
    _cache().set(key, value)


def _count(name: str) -> None:
    cache = _cache()
    try:
        cache.incr(name)
    except ValueError:  # not there yet (first use, cleared or evicted)
        if not cache.add(name, 1, timeout=None):
            cache.incr(name)


def _entries(cache: Any) -> int | None:
    store = getattr(cache, "_cache", None)  # LocMemCache: the dict itself
    if isinstance(store, dict):
        return sum(1 for k in list(store) if f":{ENTRY_PREFIX}" in k)
    keys = getattr(cache, "keys", None)  # django-redis
    if callable(keys):
        return len(keys(f"{ENTRY_PREFIX}*"))
    return None  # backends that cannot count cheaply


def stats() -> dict[str, Any]:
    cache = _cache()
    counts = cache.get_many([HITS, MISSES])
    hits, misses = int(counts.get(HITS, 0)), int(counts.get(MISSES, 0))
    lookups = hits + misses
    return {
        "hits": hits,
        "misses": misses,
        "hit_rate": round(hits / lookups, 4) if lookups else 0.0,
        "entries": _entries(cache),
        "max_entries": settings.CACHES[ALIAS].get("OPTIONS", {}).get("MAX_ENTRIES"),
        "ttl": settings.CACHES[ALIAS].get("TIMEOUT"),
    }


def clear() -> None:
    """Drop every cached answer and the counters (the alias holds nothing else)."""
    _cache().clear()
