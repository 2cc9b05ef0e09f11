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
    runner = getattr(get_engine().provider, "process", None)
    if runner is not None and runner.state != "ready":  # its runner died: restarting with backoff
        return False, runner.reason or f"the runner of {status.model} is {runner.state}"
    detail = f"{status.provider}:{status.model} on {status.device}"
    if status.engine:
        detail += f" ({status.engine}{': ' + status.engine_note if status.engine_note else ''})"
    return True, f"{detail}; {status.reason}" if status.reason else detail


def models_check() -> tuple[bool, str]:
    """The pool beside the default: what is loaded, and which models failed (the site stays ready)."""
    state = get_engine().pool_state()
    loaded = sorted(mid for mid, row in state.items() if row["state"] == "loaded")
    failed = [row["reason"] for _mid, row in sorted(state.items()) if row["state"] == "unavailable"]  # "<id>: why"
    for mid, row in state.items():
        runner = getattr(row.get("provider"), "process", None)
        if runner is not None and runner.state != "ready":
            failed.append(f"{mid}: {runner.reason or runner.state}")
    detail = f"loaded: {', '.join(loaded) or 'none'}"
    return True, detail + (f"; failed: {'; '.join(failed)}" if failed else "")
