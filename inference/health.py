"""Readiness of the inference side, reported by /readyz: the engine's real state."""

from __future__ import annotations

from inference.engine import FAILED, IDLE, LOADING, configured_spec, get_engine
from inference.providers.base import ProviderUnavailable
from inference.registry import check_spec


def provider_check() -> tuple[bool, str]:
    """Ready when a provider is loaded; before the first load, whether the configured one could load."""
    status = get_engine().status()
    if status.state == IDLE:
        spec = configured_spec()
        try:
            check_spec(spec)
        except ProviderUnavailable as exc:
            return False, exc.message
        return True, f"{spec.label()}: not loaded yet, loads on first use"
    if status.state == LOADING:
        return False, f"loading {status.reason}"
    if status.state == FAILED:
        return False, status.reason
    detail = f"{status.provider}:{status.model} on {status.device}"
    if status.engine:
        detail += f" ({status.engine}{': ' + status.engine_note if status.engine_note else ''})"
    return True, f"{detail}; {status.reason}" if status.reason else detail
