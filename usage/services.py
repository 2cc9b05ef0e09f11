"""Metering: check limits before the work, settle to the real usage after it, write the ledger.

Every completion and embedding request goes through one `Meter` (who pays: a user and the API
key they used, if any):

    meter = Meter.for_request(request)                      # or Meter(user=..., api_key=...)
    reservation = meter.reserve(model="smollm2", prompt_tokens=12, max_tokens=256)  # 429 past a limit
    ...the work...
    reservation.settle(prompt_tokens=12, completion_tokens=40)   # the real usage, into the ledger
    # or reservation.release() when the work failed and nothing was produced
    response.headers.update(meter.headers())                 # x-ratelimit-* as OpenAI sends them

A reservation adds the request's maximum (prompt tokens + max tokens; its maximum cost) to the
counter of every limit that applies, each with one conditional UPDATE (`used + n <= limit`) in
one transaction: it is all or nothing, and N concurrent requests in any number of server
processes can never push a counter past its limit. Settling moves each counter by the
difference between what was reserved and what was used.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from accounts.models import ApiKey
from accounts.permissions import api_key_of
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError
from usage.models import ModelPrice, UsageBucket, UsageCounter, UsageLimit
from usage.windows import KINDS, cost_micros, from_micros, openai_duration, to_micros, window

# Site-wide defaults: settings.USAGE_DEFAULT_<KIND> (unset: unlimited).
DEFAULT_SETTINGS = {kind: f"USAGE_DEFAULT_{kind.upper()}" for kind in KINDS}
PRICE_CACHE_SECONDS = 10.0


def clock() -> datetime:
    """Now, for windows and the ledger (tests pin it, so a window never rolls over in the middle of one)."""
    return timezone.now()


class QuotaExceeded(ApplicationError):
    """A limit would be crossed: 429 with the limit, its reset time and Retry-After."""

    status = 429
    code = ErrorCode.QUOTA_EXCEEDED

    def __init__(self, *, kind: str, limit: int, used: int, needed: int, resets_at: datetime, scope: str):
        self.kind, self.limit, self.used, self.needed, self.resets_at = kind, limit, used, needed, resets_at
        label = KINDS[kind].label
        shown = (lambda n: f"{from_micros(n)}") if KINDS[kind].unit == "spend" else str
        whose = "this API key's" if scope == "key" else "your"
        if needed > limit:
            why = f"this request needs up to {shown(needed)}, more than {whose} limit of {shown(limit)} {label}"
        else:
            why = (
                f"{whose} limit of {shown(limit)} {label} would be crossed: {shown(used)} used,"
                f" this request needs up to {shown(needed)}"
            )
        retry_after = max(1, math.ceil((resets_at - clock()).total_seconds()))
        super().__init__(
            f"Usage limit reached: {why}. It resets at {resets_at.isoformat().replace('+00:00', 'Z')}.",
            details={
                "limit": kind,
                "limit_value": _shown_value(kind, limit),
                "used": _shown_value(kind, used),
                "requested": _shown_value(kind, needed),
                "resets_at": resets_at.isoformat().replace("+00:00", "Z"),
                "retry_after": retry_after,
            },
            headers={"Retry-After": str(retry_after)},
        )


def _shown_value(kind: str, value: int) -> Any:
    return float(from_micros(value)) if KINDS[kind].unit == "spend" else value


class ModelNotAllowed(ApplicationError):
    status = 403
    code = ErrorCode.MODEL_NOT_ALLOWED


# --- prices --------------------------------------------------------------------------------


_prices: dict[str, tuple[Decimal, Decimal]] = {}
_prices_loaded_at = -math.inf
_prices_lock = threading.Lock()


def price_of(model: str) -> tuple[Decimal, Decimal]:
    """(input, output) price per million tokens: the admin's table, else USAGE_PRICES, else 0 (local models)."""
    global _prices, _prices_loaded_at
    now = time.monotonic()
    if now - _prices_loaded_at > PRICE_CACHE_SECONDS:
        # Read at most every few seconds per process: a price is asked for on every request.
        table = {
            row.model: (row.input_per_million, row.output_per_million)
            for row in ModelPrice.objects.all().only("model", "input_per_million", "output_per_million")
        }
        with _prices_lock:
            _prices, _prices_loaded_at = table, now
    if model in _prices:
        return _prices[model]
    configured = settings.USAGE_PRICES.get(model)
    if configured is not None:
        return Decimal(str(configured[0])), Decimal(str(configured[1]))
    return Decimal(0), Decimal(0)


def prices_changed() -> None:
    """Forget the price table read so far (the admin calls this when a price is saved)."""
    global _prices_loaded_at
    _prices_loaded_at = -math.inf


def cost_of(model: str, prompt_tokens: int, completion_tokens: int) -> int:
    input_price, output_price = price_of(model)
    return cost_micros(prompt_tokens, completion_tokens, input_per_million=input_price, output_per_million=output_price)


# --- limits --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """One limit that applies to a request: whose counter (`user:<id>`, `key:<id>`), which kind, how much."""

    subject: str
    kind: str
    value: int  # requests, tokens or micro-units of spend

    @property
    def scope(self) -> str:
        return self.subject.split(":", 1)[0]


def _as_count(kind: str, value: Any) -> int:
    return to_micros(value) if KINDS[kind].unit == "spend" else int(value)


def site_defaults() -> dict[str, int]:
    """The site-wide default limits that are set."""
    values = {}
    for kind, name in DEFAULT_SETTINGS.items():
        value = getattr(settings, name, None)
        if value is not None:
            values[kind] = _as_count(kind, value)
    return values


def _limit_rows(user: Any, api_key: ApiKey | None) -> dict[bool, dict[str, Any]]:
    """{True: the user's row, False: the key's row} of set values, in one plain query.

    Read on every request (a limit staff set applies to the next one, in every process), so the
    ORM's few milliseconds of building and reading a query are skipped here.
    """
    columns = ", ".join(connection.ops.quote_name(kind) for kind in KINDS)
    table = connection.ops.quote_name(UsageLimit._meta.db_table)
    where, params = "user_id = %s", [user.pk]
    if api_key is not None:
        where, params = "user_id = %s OR api_key_id = %s", [user.pk, api_key.pk]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT user_id, {columns} FROM {table} WHERE {where}", params)  # noqa: S608 - names only
        rows = cursor.fetchall()
    found = {}
    for user_id, *values in rows:
        found[user_id is not None] = {
            kind: value for kind, value in zip(KINDS, values, strict=True) if value is not None
        }
    return found


def limits_for(user: Any, api_key: ApiKey | None = None) -> list[Limit]:
    """Every limit on `user` (theirs over the site defaults) and on `api_key`, in a fixed order."""
    if user is None or not getattr(user, "is_authenticated", False):
        return []
    rows = _limit_rows(user, api_key)
    own = rows.get(True, {})
    values = {} if (user.is_staff and settings.USAGE_STAFF_EXEMPT_FROM_DEFAULTS) else site_defaults()
    values.update({kind: _as_count(kind, value) for kind, value in own.items()})
    limits = [Limit(f"user:{user.pk}", kind, value) for kind, value in values.items()]
    if api_key is not None:
        limits += [Limit(f"key:{api_key.pk}", kind, _as_count(kind, v)) for kind, v in rows.get(False, {}).items()]
    # One order for every process: two transactions never wait on each other's rows in a cycle.
    return sorted(limits, key=lambda limit: (limit.subject, limit.kind))


@dataclass
class LimitState:
    """A limit after a reservation: what the x-ratelimit-* headers and GET /api/v1/usage report."""

    kind: str
    scope: str
    limit: int
    used: int
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scope": self.scope,
            "limit": _shown_value(self.kind, self.limit),
            "used": _shown_value(self.kind, self.used),
            "remaining": _shown_value(self.kind, self.remaining),
            "resets_at": self.resets_at,
        }


def _amount(kind: str, *, tokens: int, cost: int) -> int:
    unit = KINDS[kind].unit
    return 1 if unit == "requests" else tokens if unit == "tokens" else cost


@dataclass
class _Hold:
    limit: Limit
    window_start: datetime
    resets_at: datetime
    amount: int


_sqlite_writer = threading.Lock()
_writer_state = threading.local()


@contextlib.contextmanager
def writing():
    """One transaction of counter and ledger writes (callers add their own writes to it: the request's record).

    SQLite has one writer at a time and makes the others poll with growing sleeps (up to 100 ms
    each) while they wait, which under load costs far more than the writes themselves: threads of
    this process take turns on a lock first, so they queue instead of polling. Other processes
    still meet SQLite's own lock; PostgreSQL locks rows and needs no such turn. Nested uses join
    the outer transaction.
    """
    if getattr(_writer_state, "inside", False):
        yield
        return
    lock = _sqlite_writer if connection.vendor == "sqlite" else contextlib.nullcontext()
    with lock, transaction.atomic():
        _writer_state.inside = True
        try:
            yield
        finally:
            _writer_state.inside = False


def _table() -> str:
    return connection.ops.quote_name(UsageCounter._meta.db_table)


def _add_if_fits(cursor: Any, hold: _Hold) -> int | None:
    """Add the hold to its counter when it fits, in one statement; the counter's new value, else None."""
    cursor.execute(
        f"UPDATE {_table()} SET used = used + %s "  # noqa: S608 - a quoted table name; values are parameters
        "WHERE subject = %s AND kind = %s AND window_start = %s AND used <= %s RETURNING used",
        [
            hold.amount,
            hold.limit.subject,
            hold.limit.kind,
            connection.ops.adapt_datetimefield_value(hold.window_start),
            hold.limit.value - hold.amount,
        ],
    )
    row = cursor.fetchone()
    return None if row is None else row[0]


def _add_all_if_all_fit(cursor: Any, holds: list[_Hold]) -> dict[tuple[str, str], int]:
    """Add every hold to its counter in one statement when every counter exists and every hold fits.

    {(subject, kind): new value} of the counters it moved: all of them, or none when one would
    not fit. Some (not all) when a counter is missing: the caller opens it and goes on one by one.
    One statement rather than one per limit: under load every statement inside the write
    transaction is a hand-over of the interpreter that the lock's holder waits to get back.
    """
    adapt = connection.ops.adapt_datetimefield_value
    match = " OR ".join(["(subject = %s AND kind = %s AND window_start = %s)"] * len(holds))
    keys = [v for h in holds for v in (h.limit.subject, h.limit.kind, adapt(h.window_start))]
    amounts = " ".join(["WHEN subject = %s AND kind = %s THEN %s"] * len(holds))
    amount_params = [v for h in holds for v in (h.limit.subject, h.limit.kind, h.amount)]
    over = " OR ".join(["(c.subject = %s AND c.kind = %s AND c.window_start = %s AND c.used > %s)"] * len(holds))
    over_params = [
        v for h in holds for v in (h.limit.subject, h.limit.kind, adapt(h.window_start), h.limit.value - h.amount)
    ]
    # Each row's own bound too: a row re-checked after waiting for another transaction's lock is re-checked
    # on its new value, which the NOT EXISTS (the statement's snapshot) does not see. Rows that do not fit
    # then stay as they are, and the caller undoes the others (a partial move).
    bounds = " ".join(["WHEN subject = %s AND kind = %s THEN %s"] * len(holds))
    bound_params = [v for h in holds for v in (h.limit.subject, h.limit.kind, h.limit.value - h.amount)]
    table = _table()
    cursor.execute(
        f"UPDATE {table} SET used = used + CASE {amounts} END "  # noqa: S608 - a quoted table name; values are parameters
        f"WHERE ({match}) AND used <= CASE {bounds} END "
        f"AND NOT EXISTS (SELECT 1 FROM {table} AS c WHERE {over}) RETURNING subject, kind, used",
        [*amount_params, *keys, *bound_params, *over_params],
    )
    return {(subject, kind): used for subject, kind, used in cursor.fetchall()}


def _lock_counters(cursor: Any, holds: list[_Hold]) -> None:
    """Lock the holds' counter rows until the transaction ends (PostgreSQL), always in the same order.

    Under READ COMMITTED an UPDATE that waited for a row locked by another transaction re-checks its
    own row's conditions on the row's new version, but a subquery over other rows (the all-or-nothing
    NOT EXISTS of `_add_all_if_all_fit`) keeps the statement's older snapshot: twenty concurrent
    reservations let 13 through a limit that holds 10. Once the rows are locked, the UPDATE that
    follows starts with a fresh snapshot that nobody can change under it. The order (by key) keeps two
    requests that lock the same counters from deadlocking. SQLite has one writer at a time already.
    A counter opened after this lock is not covered; the UPDATE's own per-row bound keeps it exact.
    """
    adapt = connection.ops.adapt_datetimefield_value
    match = " OR ".join(["(subject = %s AND kind = %s AND window_start = %s)"] * len(holds))
    keys = [v for h in holds for v in (h.limit.subject, h.limit.kind, adapt(h.window_start))]
    cursor.execute(
        f"SELECT 1 FROM {_table()} WHERE {match} ORDER BY subject, kind, window_start FOR UPDATE",  # noqa: S608 - a quoted table name; values are parameters
        keys,
    )


def _hold(holds: list[_Hold]) -> list[LimitState]:
    """Add every hold to its counter, all or nothing; QuotaExceeded names the first that does not fit.

    One conditional UPDATE for all limits in the common case; the first request of a window opens
    its counter with what the ledger already holds, and a refusal is then found one limit at a time.
    """
    with writing(), connection.cursor() as cursor:
        if connection.vendor != "sqlite":
            _lock_counters(cursor, holds)
        moved = _add_all_if_all_fit(cursor, holds)
        if len(moved) < len(holds):
            for hold in holds:  # undo a partial move (a counter was missing), then one by one
                if (hold.limit.subject, hold.limit.kind) in moved:
                    UsageCounter.objects.filter(
                        subject=hold.limit.subject, kind=hold.limit.kind, window_start=hold.window_start
                    ).update(used=F("used") - hold.amount)
            moved = {(h.limit.subject, h.limit.kind): _hold_one(cursor, h) for h in holds}
    return [
        LimitState(h.limit.kind, h.limit.scope, h.limit.value, moved[(h.limit.subject, h.limit.kind)], h.resets_at)
        for h in holds
    ]


def _hold_one(cursor: Any, hold: _Hold) -> int:
    """Add one hold to its counter (opening it if need be); its new value, or QuotaExceeded."""
    used = _add_if_fits(cursor, hold)
    if used is not None:
        return used
    current = _counter_values([hold]).get(_counter_key(hold))
    if current is None:  # no counter for this window yet
        UsageCounter.objects.bulk_create(
            [
                UsageCounter(
                    subject=hold.limit.subject,
                    kind=hold.limit.kind,
                    window_start=hold.window_start,
                    used=_opening_usage(hold.limit, hold.window_start),
                )
            ],
            ignore_conflicts=True,
        )
        used = _add_if_fits(cursor, hold)
        if used is not None:
            return used
        current = _counter_values([hold]).get(_counter_key(hold), 0)
    raise QuotaExceeded(
        kind=hold.limit.kind,
        limit=hold.limit.value,
        used=current,
        needed=hold.amount,
        resets_at=hold.resets_at,
        scope=hold.limit.scope,
    )


def _opening_usage(limit: Limit, start: datetime) -> int:
    """What the ledger already holds for a limit's window: a limit set during the day counts the day.

    Minute windows open empty (the ledger is hourly); day and month windows start on the hour.
    """
    kind = KINDS[limit.kind]
    if kind.window == "minute":
        return 0
    scope, ident = limit.subject.split(":", 1)
    rows = UsageBucket.objects.filter(hour__gte=start, **{"user_id" if scope == "user" else "api_key_id": ident})
    if kind.unit == "requests":
        total = rows.aggregate(n=Sum("requests"))["n"]
    elif kind.unit == "tokens":
        total = rows.aggregate(n=Sum(F("prompt_tokens") + F("completion_tokens")))["n"]
    else:
        total = rows.aggregate(n=Sum("cost_micros"))["n"]
    return int(total or 0)


def _counter_key(hold: _Hold) -> tuple[str, str, datetime]:
    return hold.limit.subject, hold.limit.kind, hold.window_start


def _counter_values(holds: list[_Hold]) -> dict[tuple[str, str, datetime], int]:
    if not holds:
        return {}
    query = Q()
    for hold in holds:
        query |= Q(subject=hold.limit.subject, kind=hold.limit.kind, window_start=hold.window_start)
    return {
        (subject, kind, start): used
        for subject, kind, start, used in UsageCounter.objects.filter(query).values_list(
            "subject", "kind", "window_start", "used"
        )
    }


# --- the meter and its reservations --------------------------------------------------------


@dataclass
class Meter:
    """Who pays for a request (a user, the API key they used) and the limit states after its last reservation."""

    user: Any = None
    api_key: ApiKey | None = None
    states: list[LimitState] = field(default_factory=list)

    @classmethod
    def for_request(cls, request: Any) -> Meter:
        """The meter of a DRF request: its user and, when it authenticated with one, its API key."""
        user = getattr(request, "user", None)
        return cls(user=user if getattr(user, "is_authenticated", False) else None, api_key=api_key_of(request))

    def check_model(self, model: str) -> None:
        """ModelNotAllowed (403) when the API key has a model list without `model`."""
        if self.api_key is not None and not self.api_key.allows_model(model):
            allowed = ", ".join(self.api_key.allowed_models)
            raise ModelNotAllowed(f"This API key may not call the model {model!r} (it may call: {allowed}).")

    def allows_model(self, model: str) -> bool:
        return self.api_key is None or self.api_key.allows_model(model)

    def reserve(
        self,
        *,
        model: str,
        prompt_tokens: int,
        max_tokens: int,
        kind: str = "completion",
        cached: bool = False,
        deferred: bool = False,
    ) -> Reservation:
        """Hold the request's maximum on every limit that applies; QuotaExceeded (429) when one would be crossed.

        `cached`: the answer is already known (a cache hit), so nothing is spent on it.
        `deferred`: hold nothing yet; the caller applies the holds with `Reservation.apply()` inside the
        transaction that records the request (an answer that is already known: one transaction in all).
        """
        reservation = Reservation(
            meter=self,
            model=model,
            kind=kind,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            cached=cached,
        )
        if not settings.USAGE_ENABLED:
            reservation.done = True
            return reservation
        limits = limits_for(self.user, self.api_key)
        if limits:
            now = clock()
            tokens = prompt_tokens + max_tokens
            cost = 0 if cached else cost_of(model, prompt_tokens, max_tokens)
            holds = []
            for limit in limits:
                start, end = window(limit.kind, now)
                holds.append(_Hold(limit, start, end, _amount(limit.kind, tokens=tokens, cost=cost)))
            reservation.holds = holds
            if deferred:
                reservation.pending = True
            else:
                self.states = _hold(holds)
        else:
            self.states = []
        return reservation

    def settled(self, hold: _Hold, delta: int) -> None:
        """A reservation settled: the states (and so the headers of a JSON answer) show the real usage."""
        for state in self.states:
            if (state.kind, state.scope, state.resets_at) == (hold.limit.kind, hold.limit.scope, hold.resets_at):
                state.used += delta

    def headers(self) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for the tightest request and token limits of the last reservation."""
        out: dict[str, str] = {}
        now = clock()
        for unit, suffix in (("requests", "requests"), ("tokens", "tokens")):
            states = [s for s in self.states if KINDS[s.kind].unit == unit]
            if not states:
                continue
            tightest = min(states, key=lambda s: (s.remaining, s.resets_at))
            out[f"x-ratelimit-limit-{suffix}"] = str(tightest.limit)
            out[f"x-ratelimit-remaining-{suffix}"] = str(tightest.remaining)
            out[f"x-ratelimit-reset-{suffix}"] = openai_duration((tightest.resets_at - now).total_seconds())
        return out


@dataclass
class Reservation:
    """What one request holds on its limits until it settles (the real usage) or is released (nothing used)."""

    meter: Meter
    model: str
    kind: str
    prompt_tokens: int
    max_tokens: int
    cached: bool = False
    holds: list[_Hold] = field(default_factory=list)
    done: bool = False
    pending: bool = False  # reserved with deferred=True and not applied yet: nothing is held

    def apply(self) -> None:
        """Hold a deferred reservation now (QuotaExceeded when a limit would be crossed); a no-op otherwise.

        Called inside `writing()`, a refusal rolls back what the transaction wrote before it.
        """
        if self.pending:
            self.pending = False
            try:
                self.meter.states = _hold(self.holds)
            except QuotaExceeded:
                self.done = True  # nothing is held: nothing to settle or release
                raise

    def settle(self, *, prompt_tokens: int, completion_tokens: int, status: str = "ok") -> None:
        """Move the holds to the real usage and add the request to the ledger (status: ok, cancelled, error)."""
        if self.done:
            return
        self.apply()
        self.done = True
        tokens = prompt_tokens + completion_tokens
        cost = 0 if self.cached else cost_of(self.model, prompt_tokens, completion_tokens)
        with writing():
            for hold in self.holds:
                unit = KINDS[hold.limit.kind].unit
                if unit == "requests":
                    continue  # a request counts once it is admitted
                delta = _amount(hold.limit.kind, tokens=tokens, cost=cost) - hold.amount
                if delta:
                    UsageCounter.objects.filter(
                        subject=hold.limit.subject, kind=hold.limit.kind, window_start=hold.window_start
                    ).update(used=F("used") + delta)
                    self.meter.settled(hold, delta)
            ledger_add(
                user=self.meter.user,
                api_key=self.meter.api_key,
                model=self.model,
                kind=self.kind,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost=cost,
                cached=self.cached,
                status=status,
            )
        _prune_now_and_then()

    def release(self) -> None:
        """Give back the held tokens and spend: the work failed before producing anything (no ledger entry)."""
        if self.done:
            return
        self.done = True
        if not self.holds or self.pending:
            return
        with writing():
            for hold in self.holds:
                if KINDS[hold.limit.kind].unit != "requests" and hold.amount:
                    UsageCounter.objects.filter(
                        subject=hold.limit.subject, kind=hold.limit.kind, window_start=hold.window_start
                    ).update(used=F("used") - hold.amount)


# --- the ledger ----------------------------------------------------------------------------


def _bucket_key(hour: datetime, user_id: Any, key_id: Any, kind: str, model: str) -> str:
    return f"{hour:%Y%m%d%H}|{user_id or ''}|{key_id or ''}|{kind}|{model}"


_COUNTS = (
    "requests",
    "cached_requests",
    "cancelled_requests",
    "failed_requests",
    "prompt_tokens",
    "completion_tokens",
    "cost_micros",
)


def ledger_add(
    *,
    user: Any,
    api_key: ApiKey | None,
    model: str,
    kind: str,
    prompt_tokens: int,
    completion_tokens: int,
    cost: int,
    cached: bool = False,
    status: str = "ok",
    at: datetime | None = None,
) -> None:
    """Add one request to its hour's bucket: one upsert (INSERT ... ON CONFLICT DO UPDATE; SQLite and PostgreSQL)."""
    hour = (at or clock()).replace(minute=0, second=0, microsecond=0)
    user_id = user.pk if getattr(user, "is_authenticated", False) else None
    key_id = api_key.pk if api_key is not None else None
    values = {
        "requests": 1,
        "cached_requests": int(cached),
        "cancelled_requests": int(status == "cancelled"),
        "failed_requests": int(status == "error"),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost_micros": cost,
    }
    table = connection.ops.quote_name(UsageBucket._meta.db_table)
    quote = connection.ops.quote_name
    columns = ["key", "hour", "user_id", "api_key_id", "model", "kind", *_COUNTS]
    updates = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in _COUNTS)
    # Only quoted identifiers are formatted in; every value is a parameter.
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({quote('key')}) DO UPDATE SET {updates}"
    )
    params = [
        _bucket_key(hour, user_id, key_id, kind, model),
        connection.ops.adapt_datetimefield_value(hour),
        user_id,
        key_id,
        model,
        kind,
        *(values[c] for c in _COUNTS),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- limits, as staff set them ----------------------------------------------------------------


def limits_set(*, user: Any = None, api_key: ApiKey | None = None, values: dict[str, Any]) -> UsageLimit:
    """Set (or clear, with None) limits of a user or an API key; kinds not in `values` stay as they are."""
    unknown = set(values) - set(KINDS)
    if unknown:
        raise ApplicationError(f"Unknown limit {sorted(unknown)[0]!r}; limits are {', '.join(KINDS)}.")
    row, _created = (
        UsageLimit.objects.get_or_create(user=user)
        if user is not None
        else UsageLimit.objects.get_or_create(api_key=api_key)
    )
    for kind, value in values.items():
        setattr(row, kind, value)
    row.full_clean()
    row.save()
    return row


def limit_states(user: Any, api_key: ApiKey | None = None, *, now: datetime | None = None) -> list[LimitState]:
    """Every limit on the user (and key) with what is used of its current window: the usage page and API."""
    now = now or clock()
    holds = []
    for limit in limits_for(user, api_key):
        start, end = window(limit.kind, now)
        holds.append(_Hold(limit, start, end, 0))
    used = _counter_values(holds)
    return [
        LimitState(h.limit.kind, h.limit.scope, h.limit.value, used.get(_counter_key(h), 0), h.resets_at) for h in holds
    ]


def counters_prune(*, before: datetime) -> int:
    """Drop counters of windows that started before `before` (their totals live on in the ledger).

    Per-minute counters older than an hour go too: nothing reads a past minute.
    """
    minutes = [kind for kind, spec in KINDS.items() if spec.window == "minute"]
    stale = Q(window_start__lt=before) | Q(kind__in=minutes, window_start__lt=clock() - timedelta(hours=1))
    deleted, _ = UsageCounter.objects.filter(stale).delete()
    return deleted


def counters_recount() -> int:
    """Drop every counter, so each reopens from the ledger at its next use; returns how many went.

    A request holds its maximum on the counters until it settles; a process killed mid-answer never
    settles, and its holds would count against the limits until their windows end (a month, for a
    monthly limit). The ledger has only settled usage, so counters rebuilt from it are exact again:
    day and month windows reopen with what the ledger holds, minute windows empty (the ledger is
    hourly: at most one minute's requests are forgiven). Only while no request is in flight in any
    process (a live request's hold would be forgotten too): `make run` does it before it serves.
    """
    deleted, _ = UsageCounter.objects.all().delete()
    return deleted


_settled = itertools.count(1)
PRUNE_EVERY = 5000  # settlements per process between two prunes of old counters
PRUNE_AFTER = timedelta(days=40)  # longer than a month: a month's counter is read until it ends


def _prune_now_and_then() -> None:
    """Keep the counters table small without a scheduler: every PRUNE_EVERY settlements, drop old windows."""
    if next(_settled) % PRUNE_EVERY == 0:
        counters_prune(before=clock() - PRUNE_AFTER)
