"""Reads of the dashboard: the aggregates behind `GET /api/v1/metrics`.

Everything is grouped and counted in the database; only bounded results come back (one row
per endpoint, status, time bucket, provider/model, and a few training runs). Percentiles are
nearest-rank (the value at rank ceil(p * n)), picked with window functions (SQLite >= 3.25
and PostgreSQL both have them) so the raw latencies never leave the database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connections
from django.db.models import Avg, CharField, Count, F, FloatField, Func, Max, Q, QuerySet, Sum, Window
from django.db.models.functions import Ceil, Coalesce, RowNumber, Trunc
from django.utils import timezone

from dashboard.models import RequestMetric


@dataclass(frozen=True)
class Span:
    """A time window of the dashboard and how its charts are bucketed."""

    span: timedelta
    bucket: str  # a Trunc kind: minute, hour, day
    step: timedelta
    feedback_bucket: str
    feedback_step: timedelta


MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
WINDOWS: dict[str, Span] = {
    "1h": Span(HOUR, "minute", MINUTE, "hour", HOUR),
    "24h": Span(DAY, "hour", HOUR, "hour", HOUR),
    "7d": Span(7 * DAY, "hour", HOUR, "day", DAY),
    "30d": Span(30 * DAY, "day", DAY, "day", DAY),
}
DEFAULT_WINDOW = "24h"
MAX_ENDPOINTS = 50  # the busiest routes; the rest are summed up in `requests.total`
MAX_MODELS = 20
TRAINING_RUNS = 5
TOP_USAGE = 10  # rows per usage ranking (users, keys, models)
USAGE_ORDERS = ("tokens", "spend")


def percentiles_by(
    queryset: QuerySet, *, group: tuple[str, ...], value: str, quantiles: tuple[float, ...] = (0.5, 0.95)
) -> dict[tuple[Any, ...], dict[float, float]]:
    """{(group values): {q: nearest-rank q-quantile of `value`}}, ranked in the database.

    Only the rows at the wanted ranks come back: len(quantiles) per group at most.
    """
    partition = [F(name) for name in group]
    ranked = queryset.order_by().annotate(
        _rank=Window(RowNumber(), partition_by=partition, order_by=[F(value).asc(), F("pk").asc()]),
        _n=Window(Count("pk"), partition_by=partition),
    )
    wanted = Q()
    for q in quantiles:
        wanted |= Q(_rank=Ceil(F("_n") * q))
    result: dict[tuple[Any, ...], dict[float, float]] = {}
    for *key, rank, n, v in ranked.filter(wanted).values_list(*group, "_rank", "_n", value):
        for q in quantiles:
            if rank == max(1, math.ceil(n * q)):
                result.setdefault(tuple(key), {})[q] = v
    return result


def _buckets(since: datetime, until: datetime, step: timedelta, kind: str) -> list[datetime]:
    """Every bucket start from the one holding `since` to the one holding `until` (so empty ones show as 0)."""
    start = since.astimezone(UTC).replace(second=0, microsecond=0)
    if kind in ("hour", "day"):
        start = start.replace(minute=0)
    if kind == "day":
        start = start.replace(hour=0)
    out = []
    while start <= until:
        out.append(start)
        start += step
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


class SqliteBucket(Func):
    """strftime's start of the minute/hour/day (UTC, as text): SQLite's own, unlike Django's Trunc,
    which calls a Python function per row there (seconds for a month of requests)."""

    output_field = CharField()
    FORMATS = {"minute": "%Y-%m-%d %H:%M:00", "hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}

    def __init__(self, expression: Any, kind: str):
        super().__init__(expression)
        self.kind = kind

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"strftime(%s, {sql})", (self.FORMATS[self.kind], *params)


def _bucket_key(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC)


def counts_by_bucket(queryset: QuerySet, *, field: str, kind: str, **counts: Any) -> dict[datetime, dict[str, int]]:
    """{bucket start (UTC): {name: count}} for the non-empty buckets, grouped in the database."""
    if connections[queryset.db].vendor == "sqlite":
        bucket: Any = SqliteBucket(field, kind)
    else:
        bucket = Trunc(field, kind, tzinfo=UTC)
    rows = queryset.order_by().annotate(_t=bucket).values("_t").annotate(**counts)
    return {_bucket_key(row.pop("_t")): row for row in rows}


def request_summary(*, since: datetime, until: datetime, window: Span) -> dict[str, Any]:
    rows = RequestMetric.objects.filter(created__gte=since, created__lte=until)
    # One scan grouped by (endpoint, status): few rows (routes x statuses), and every total below
    # is a sum over them.
    groups = list(
        rows.order_by()
        .values("endpoint", "status")
        .annotate(
            n=Count("pk"), ms=Sum("latency_ms"), max_ms=Max("latency_ms"), streamed=Count("pk", filter=Q(streamed=True))
        )
    )
    per_endpoint: dict[str, dict[str, Any]] = {}
    per_status: dict[int, int] = {}
    for g in groups:
        e = per_endpoint.setdefault(g["endpoint"], {"requests": 0, "errors": 0, "ms": 0.0, "max_ms": 0.0})
        e["requests"] += g["n"]
        e["errors"] += g["n"] if g["status"] >= 500 else 0
        e["ms"] += g["ms"] or 0.0
        e["max_ms"] = max(e["max_ms"], g["max_ms"] or 0.0)
        per_status[g["status"]] = per_status.get(g["status"], 0) + g["n"]
    busiest = sorted(per_endpoint.items(), key=lambda item: (-item[1]["requests"], item[0]))[:MAX_ENDPOINTS]
    quantiles = percentiles_by(
        rows.filter(endpoint__in=[name for name, _ in busiest]), group=("endpoint",), value="latency_ms"
    )
    endpoints = [
        {
            "endpoint": name,
            "requests": e["requests"],
            "errors": e["errors"],
            "avg_ms": _round(e["ms"] / e["requests"]),
            "p50_ms": _round(quantiles.get((name,), {}).get(0.5)),
            "p95_ms": _round(quantiles.get((name,), {}).get(0.95)),
            "max_ms": _round(e["max_ms"]),
        }
        for name, e in busiest
    ]
    counted = counts_by_bucket(
        rows, field="created", kind=window.bucket, requests=Count("pk"), errors=Count("pk", filter=Q(status__gte=500))
    )
    empty = {"requests": 0, "errors": 0}
    timeline = [{"t": _iso(t), **counted.get(t, empty)} for t in _buckets(since, until, window.step, window.bucket)]
    total = sum(per_status.values())
    return {
        "requests": {
            "total": total,
            "server_errors": sum(n for status, n in per_status.items() if status >= 500),
            "client_errors": sum(n for status, n in per_status.items() if 400 <= status < 500),
            "streamed": sum(g["streamed"] for g in groups),
            "avg_ms": _round(sum(g["ms"] or 0.0 for g in groups) / total) if total else None,
        },
        "endpoints": endpoints,
        "status_codes": [{"status": status, "count": per_status[status]} for status in sorted(per_status)],
        "timeline": timeline,
    }


def inference_summary(*, since: datetime, until: datetime) -> dict[str, Any]:
    """Usage records: cache share, tokens per second and time to first token per provider/model."""
    from inference import cache
    from inference.models import InferenceRecord

    records = InferenceRecord.objects.filter(created__gte=since, created__lte=until)
    counts = records.aggregate(total=Count("pk"), cached=Count("pk", filter=Q(cached=True)))
    generated = records.filter(status=InferenceRecord.Status.OK, cached=False)
    per_model = list(
        records.values("provider", "model")
        .annotate(
            requests=Count("pk"),
            n_cached=Count("pk", filter=Q(cached=True)),
            errors=Count("pk", filter=Q(status=InferenceRecord.Status.ERROR)),
            n_prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
            n_completion_tokens=Coalesce(Sum("completion_tokens"), 0),
            gen_tokens=Coalesce(Sum("completion_tokens", filter=Q(status="ok", cached=False)), 0),
            gen_ms=Coalesce(Sum("latency_ms", filter=Q(status="ok", cached=False)), 0.0, output_field=FloatField()),
            ttft_avg_ms=Avg("ttft_ms", filter=Q(status="ok", cached=False)),
        )
        .order_by("-requests", "provider", "model")[:MAX_MODELS]
    )
    ttft = percentiles_by(generated.filter(ttft_ms__isnull=False), group=("provider", "model"), value="ttft_ms")
    models = []
    for row in per_model:
        q = ttft.get((row["provider"], row["model"]), {})
        models.append(
            {
                "provider": row["provider"],
                "model": row["model"],
                "requests": row["requests"],
                "cached": row["n_cached"],
                "errors": row["errors"],
                "prompt_tokens": row["n_prompt_tokens"],
                "completion_tokens": row["n_completion_tokens"],
                # Generated tokens over the time spent generating them (cached answers left out).
                "tokens_per_second": _round(row["gen_tokens"] * 1000 / row["gen_ms"]) if row["gen_ms"] else None,
                "ttft_avg_ms": _round(row["ttft_avg_ms"]),
                "ttft_p50_ms": _round(q.get(0.5)),
                "ttft_p95_ms": _round(q.get(0.95)),
            }
        )
    lifetime = cache.stats()
    return {
        "cache": {
            "requests": counts["total"],
            "cached": counts["cached"],
            "hit_rate": round(counts["cached"] / counts["total"], 4) if counts["total"] else None,
            "lifetime": {"hits": lifetime["hits"], "misses": lifetime["misses"], "hit_rate": lifetime["hit_rate"]},
        },
        "models": models,
    }


def feedback_summary(*, since: datetime, until: datetime, window: Span) -> dict[str, Any]:
    """Ratings per bucket (a day for 7d/30d, an hour for shorter windows), up and down apart."""
    from feedback.models import Feedback

    counted = counts_by_bucket(
        Feedback.objects.filter(created__gte=since, created__lte=until),
        field="created",
        kind=window.feedback_bucket,
        up=Count("pk", filter=Q(rating=Feedback.Rating.UP)),
        down=Count("pk", filter=Q(rating=Feedback.Rating.DOWN)),
    )
    empty = {"up": 0, "down": 0}
    points = [
        {"t": _iso(t), **counted.get(t, empty)}
        for t in _buckets(since, until, window.feedback_step, window.feedback_bucket)
    ]
    return {
        "bucket": window.feedback_bucket,
        "up": sum(p["up"] for p in points),
        "down": sum(p["down"] for p in points),
        "timeline": points,
    }


def training_summary() -> dict[str, Any]:
    """The latest runs (whatever the window: a run is read as a whole) with their loss per epoch."""
    try:
        run_model = apps.get_model("training", "TrainingRun")
        metric_model = apps.get_model("training", "EpochMetric")
    except LookupError:
        return {"available": False, "runs": []}
    runs = list(
        run_model.objects.order_by("-created_at", "-id").values(
            "id", "name", "status", "base_model", "created_at", "finished_at", "eval_loss_before", "eval_loss_after"
        )[:TRAINING_RUNS]
    )
    epochs: dict[int, list[dict[str, Any]]] = {}
    for row in (
        metric_model.objects.filter(run_id__in=[r["id"] for r in runs])
        .order_by("run_id", "epoch")
        .values("run_id", "epoch", "step", "train_loss", "eval_loss", "tokens_per_second")
    ):
        run_id = row.pop("run_id")
        epochs.setdefault(run_id, []).append(row)
    return {
        "available": True,
        "runs": [
            {
                **run,
                "created_at": _iso(run["created_at"]),
                "finished_at": _iso(run["finished_at"]),
                "epochs": epochs.get(run["id"], []),
            }
            for run in runs
        ],
    }


def embeddings_summary() -> dict[str, Any]:
    """Documents, chunks and vectors in the database, and the loaded index if this process has one."""
    from embeddings.models import Collection, Document
    from embeddings.services import store_status

    counts = Document.objects.aggregate(
        documents=Count("pk", filter=Q(source__isnull=True)),
        chunks=Count("pk", filter=Q(source__isnull=False)),
        indexed=Count("pk", filter=Q(indexed=True)),
    )
    status = store_status()  # never loads the index
    return {
        **counts,
        "collections": Collection.objects.count(),
        "index": {
            "state": status.get("state"),
            "vectors": status.get("vectors"),
            "index_type": status.get("index_type"),
            "model": status.get("model"),
        },
    }


def _usage_row(row: dict[str, Any], id_: Any, name: str) -> dict[str, Any]:
    return {
        "id": id_,
        "name": name,
        "requests": row["requests"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "total_tokens": row["total_tokens"],
        "cost": row["cost"],
    }


def usage_summary(*, since: datetime, until: datetime, order: str = "tokens") -> dict[str, Any]:
    """The heaviest users, API keys and models of the ledger in [since, until), by tokens or by spend.

    The ledger counts whole hours: a bucket counts when its hour starts in the window.
    """
    from accounts.models import ApiKey
    from usage import selectors as usage

    users = usage.top("user", since=since, until=until, order=order, limit=TOP_USAGE)
    keys = usage.top("key", since=since, until=until, order=order, limit=TOP_USAGE)
    models = usage.top("model", since=since, until=until, order=order, limit=TOP_USAGE)
    # A key's row names its owner and prefix too: staff tell keys apart by them, not by their names.
    known = ApiKey.objects.select_related("user").in_bulk([row["key"] for row in keys if row["key"] is not None])

    def key_row(row: dict[str, Any]) -> dict[str, Any]:
        api_key = known.get(row["key"])
        if row["key"] is None:
            return _usage_row(row, None, "") | {"prefix": "", "user": ""}
        return _usage_row(row, row["key"], row["name"]) | {
            "prefix": api_key.display_prefix if api_key else "",
            "user": api_key.user.get_username() if api_key else "",
        }

    return {
        "order": order,
        "currency": settings.USAGE_CURRENCY,
        "top_users": [_usage_row(row, row["user"], row["username"]) for row in users],
        "top_keys": [key_row(row) for row in keys],
        "top_models": [_usage_row(row, row["model"], row["model"]) for row in models],
    }


def metrics_summary(
    *, window: str = DEFAULT_WINDOW, usage_order: str = "tokens", now: datetime | None = None
) -> dict[str, Any]:
    """Everything the dashboard shows for the last `window` (one of WINDOWS)."""
    spec = WINDOWS[window]
    until = now or timezone.now()
    since = until - spec.span
    return {
        "window": window,
        "since": _iso(since),
        "until": _iso(until),
        "bucket": spec.bucket,
        **request_summary(since=since, until=until, window=spec),
        "inference": inference_summary(since=since, until=until),
        "feedback": feedback_summary(since=since, until=until, window=spec),
        "training": training_summary(),
        "embeddings": embeddings_summary(),
        "usage": usage_summary(since=since, until=until, order=usage_order),
    }
