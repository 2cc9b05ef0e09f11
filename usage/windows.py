"""Limit kinds and their windows: plain Python, no Django.

A limit counts one unit (requests, tokens, or spend in micro-dollars) over a fixed window that
starts at a round time in UTC: the minute, the day (midnight UTC) or the month (the 1st, UTC).
Fixed windows make "used" and "resets at" exact and the same for every server process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

MICROS = 1_000_000  # spend is counted in millionths of the currency unit: integers add exactly


@dataclass(frozen=True)
class Kind:
    name: str
    unit: str  # requests | tokens | spend
    window: str  # minute | day | month
    label: str


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("requests_per_minute", "requests", "minute", "requests per minute"),
        Kind("tokens_per_minute", "tokens", "minute", "tokens per minute"),
        Kind("tokens_per_day", "tokens", "day", "tokens per day"),
        Kind("tokens_per_month", "tokens", "month", "tokens per month"),
        Kind("spend_per_day", "spend", "day", "spend per day"),
        Kind("spend_per_month", "spend", "month", "spend per month"),
    )
}
KIND_NAMES = tuple(KINDS)


def window(kind: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the window of `kind` that holds `now` (UTC)."""
    now = now.astimezone(UTC)
    unit = KINDS[kind].window
    if unit == "minute":
        start = now.replace(second=0, microsecond=0)
        return start, start + timedelta(minutes=1)
    if unit == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def to_micros(amount: Decimal | float | int) -> int:
    return int((Decimal(str(amount)) * MICROS).to_integral_value())


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS).quantize(Decimal("0.000001"))


def cost_micros(prompt_tokens: int, completion_tokens: int, *, input_per_million: Decimal, output_per_million: Decimal):
    """What the tokens cost in micro-units: price per million tokens * tokens / 1e6 * 1e6 = price * tokens."""
    # Rounded up: a reservation must never under-count what it may settle to.
    exact = Decimal(prompt_tokens) * input_per_million + Decimal(completion_tokens) * output_per_million
    return int(exact.to_integral_value(rounding="ROUND_CEILING"))


def openai_duration(seconds: float) -> str:
    """A reset time the way OpenAI's x-ratelimit-reset-* headers write it: 1s, 6m0s, 1h2m3s, 20ms."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
