"""Reads: which providers exist, whether they can serve, and what is active."""

from __future__ import annotations

from typing import Any

from inference.engine import configured_spec, get_engine
from inference.registry import PROVIDER_NAMES, availability


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


OWNERS = {"hf": "llmsite", "anthropic": "anthropic", "openai": "openai"}


def active_model() -> tuple[str, str]:
    """(provider, model) the site serves now: the loaded one, else the configured one."""
    status = get_engine().status()
    spec = configured_spec()
    return status.provider or spec.provider, status.model or spec.model


def openai_models() -> list[dict[str, Any]]:
    """Every model the site can serve, the active one first, as OpenAI model objects (GET /v1/models)."""
    from django.conf import settings

    provider, model = active_model()
    rows = [{"id": model, "object": "model", "created": 0, "owned_by": OWNERS.get(provider, provider)}]
    for entry in provider_list()["providers"]:
        if not entry["available"]:
            continue
        for listed in entry["models"]:
            servable = listed["detail"] == "ready" or entry["name"] != "hf"  # local folders must be prepared
            if servable and all(row["id"] != listed["name"] for row in rows):
                rows.append(
                    {
                        "id": listed["name"],
                        "object": "model",
                        "created": 0,
                        "owned_by": OWNERS.get(entry["name"], entry["name"]),
                    }
                )
    embedding = settings.EMBEDDING_MODEL.rstrip("/").rsplit("/", 1)[-1]
    if all(row["id"] != embedding for row in rows):
        rows.append({"id": embedding, "object": "model", "created": 0, "owned_by": "llmsite"})
    return rows


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
