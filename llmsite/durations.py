"""Durations as Ollama writes them ("5m", "1h30m", "90s", 300, -1) and the fallback chains setting.

Plain Python: settings import it, and the request parsers use `parse_duration` for `keep_alive`.
"""

from __future__ import annotations

import re

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
MAX_SECONDS = 365 * 24 * 3600.0  # a year: beyond that, say "forever" (a negative value)


class BadDuration(ValueError):
    pass


def parse_duration(value: str | float | int, name: str = "duration") -> float:
    """Seconds; a negative number means "forever". Raises BadDuration saying what is accepted."""
    if isinstance(value, bool):
        raise BadDuration(f"{name} must be seconds or a duration such as 5m or 1h30m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            sign = -1.0 if text.startswith("-") else 1.0
            text = text.lstrip("-")
            if not text or PART.sub("", text):
                raise BadDuration(f"{name} must be seconds or a duration such as 5m or 1h30m, not {value!r}") from None
            seconds = sign * sum(float(number) * UNITS[unit] for number, unit in PART.findall(text))
    if seconds != seconds or seconds > MAX_SECONDS:  # NaN or absurd
        raise BadDuration(f"{name} must be at most a year (a negative value keeps it forever)")
    return -1.0 if seconds < 0 else seconds


def parse_fallbacks(value: str) -> dict[str, tuple[str, ...]]:
    """Parse LLM_FALLBACKS: `a=b,c;d=e` → {"a": ("b", "c"), "d": ("e",)}."""
    chains: dict[str, tuple[str, ...]] = {}
    for entry in filter(None, (part.strip() for part in value.split(";"))):
        model, sep, rest = entry.partition("=")
        targets = tuple(filter(None, (t.strip() for t in rest.split(","))))
        if not sep or not model.strip() or not targets:
            raise BadDuration(f"LLM_FALLBACKS entries look like model=fallback1,fallback2; got {entry!r}")
        chains[model.strip()] = targets
    return chains
