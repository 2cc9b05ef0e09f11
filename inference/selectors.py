"""Reads: which providers exist, whether they can serve, and what is active."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from inference.engine import configured_spec, get_engine
from inference.registry import PROVIDER_NAMES, REMOTE_PROVIDERS, ProviderSpec, availability, local_models, model_id


def provider_list() -> dict[str, Any]:
    """{active: {...}, providers: [{name, available, reason, models, active}]} for GET /api/v1/providers."""
    status = get_engine().status()
    spec = configured_spec()
    active = {
        "provider": status.provider or spec.provider,
        "model": status.model or spec.model,
        "device": status.device or spec.device,
        "state": status.state,
        "reason": status.reason,
        "engine": status.engine or "",
        "engine_reason": status.engine_note,
    }
    providers = []
    for name in PROVIDER_NAMES:
        available, reason, models = availability(name)
        providers.append(
            {
                "name": name,
                "available": available,
                "reason": reason,
                "active": name == active["provider"],
                "models": [{"name": m.name, "detail": m.detail} for m in models],
            }
        )
    return {"active": active, "providers": providers}


def _local_row(entry: dict[str, Any] | None) -> dict[str, Any]:
    """A loaded model's live facts: its runner's memory and queue (asked now), idle time, keep-alive."""
    if entry is None:
        return {"state": "idle", "reason": "", "memory_mb": None, "queue": 0, "last_used": None}
    row = {
        "state": entry["state"],
        "reason": entry.get("reason", ""),
        "memory_mb": entry.get("memory_mb"),
        "queue": entry.get("leases", 0),
        "last_used": None,
        "engine": "",
    }
    provider = entry.get("provider")
    if provider is not None:
        row["engine"] = provider.engine or ""
        status = getattr(provider, "status", None)
        if status is not None:
            live = status()
            row["memory_mb"] = live.get("rss_mb", row["memory_mb"])
            row["queue"] = live.get("running", 0) + live.get("waiting", 0)
            if live.get("state") not in (None, "ready"):
                row["state"], row["reason"] = "unavailable", live.get("reason", "")
    if entry.get("idle_s") is not None:
        row["last_used"] = (timezone.now() - timedelta(seconds=entry["idle_s"])).isoformat()
    if "keep_alive" in entry:
        row["keep_alive"] = entry["keep_alive"]
    return row


def _replica_rows(entry: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The health of each replica of a loaded remote model served by several (None: one server, or not loaded)."""
    provider = entry.get("provider") if entry else None
    health = getattr(provider, "health", None)
    if health is None:
        return None
    return [replica.as_dict() for replica in health()]


def _embedding_state() -> dict[str, Any]:
    """The encoder's real state, from the embedding store (it loads with its index)."""
    from embeddings.services import store_status

    status = store_status()
    state = {"ready": "loaded", "loading": "loading", "failed": "unavailable"}.get(status.get("state"), "idle")
    reason = str(status.get("detail") or "") if state == "unavailable" else ""
    return {"state": state, "reason": reason, "memory_mb": None, "queue": 0, "last_used": None}


def models_list() -> list[dict[str, Any]]:
    """Every callable model with its state, the default first (GET /api/v1/models, /v1/models).

    Local models (prepared folders under MODELS_DIR), the models of configured remote providers
    (`<provider>/<model>`), and the embedding model; each with kind, state (loaded, loading,
    idle, unavailable + reason), memory, queue depth, last use and fallbacks.
    """
    from django.conf import settings

    engine = get_engine()
    pool = engine.pool_state()
    default = engine.default_model_id()
    ids: list[tuple[str, str]] = []  # (id, kind)
    for info in local_models():
        if info.detail == "ready":
            ids.append((info.name, "local"))
    for name in REMOTE_PROVIDERS:
        available, _reason, models = availability(name)
        if available:
            ids.extend((model_id(ProviderSpec(name, m.name)), "remote") for m in models if m.name)
    if all(mid != default for mid, _kind in ids):
        ids.insert(0, (default, "remote" if "/" in default else "local"))
    ids.sort(key=lambda item: item[0] != default)
    rows = []
    seen = set()
    for mid, kind in ids:
        if mid in seen:
            continue
        seen.add(mid)
        entry = pool.get(mid)
        if kind == "remote":
            row = (
                {"state": "unavailable", "reason": entry["reason"]}
                if entry and entry["state"] == "unavailable"
                else {"state": "loaded" if entry else "idle", "reason": ""}
            )
            row.update({"memory_mb": None, "queue": entry.get("leases", 0) if entry else 0, "last_used": None})
            replicas = _replica_rows(entry)
            if replicas is not None:
                row["replicas"] = replicas
        else:
            row = _local_row(entry)
        if mid == default and entry is None:
            status = engine.status()
            if status.state in ("failed", "loading"):  # the default's own load, which the pool does not track
                row.update(state="unavailable" if status.state == "failed" else "loading", reason=status.reason)
        rows.append(
            {
                "id": mid,
                "kind": kind,
                **row,
                "default": mid == default,
                "fallbacks": list(settings.LLM_FALLBACKS.get(mid, ())),
            }
        )
    embedding = settings.EMBEDDING_MODEL.rstrip("/").rsplit("/", 1)[-1]
    rows.append({"id": embedding, "kind": "embedding", **_embedding_state(), "default": False, "fallbacks": []})
    return rows


def openai_models() -> list[dict[str, Any]]:
    """Every callable model, the default first, as OpenAI model objects (GET /v1/models)."""
    owners = {"local": "llmsite", "embedding": "llmsite"}
    return [
        {
            "id": row["id"],
            "object": "model",
            "created": 0,
            "owned_by": owners.get(row["kind"], row["id"].split("/", 1)[0]),
        }
        for row in models_list()
    ]


def completion_origin(*, user: Any, completion_id: str) -> dict[str, str] | None:
    """{provider, model} of the user's own completion with that `id` (cmpl-<hex>); None when there is none."""
    from django.core.exceptions import ValidationError

    from inference.models import InferenceRecord

    try:
        return (
            InferenceRecord.objects.filter(request_id=completion_id.removeprefix("cmpl-"), user_id=user.pk)
            .values("provider", "model")
            .first()
        )
    except (ValidationError, ValueError, TypeError):
        return None
