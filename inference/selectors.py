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
