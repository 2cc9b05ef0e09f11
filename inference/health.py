"""Readiness of the inference side, reported by /readyz: the engine's real state.

A loaded model is ready only while its engine makes progress: a local model whose engine thread
died, or that has work waiting or running and completed no step for READINESS_STALL_SECONDS, is
not ready, and neither is a runner process that has not answered for that long (the reason names
the model, what is stuck and for how long). These checks read what the engines last reported
(`Progress`, polled from runners every second): a probe never waits on a stuck engine.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from inference.engine import FAILED, IDLE, LOADING, configured_spec, get_engine
from inference.providers.base import ProviderUnavailable
from inference.registry import check_spec


def engine_problem(provider: Any, model: str) -> str:
    """Why `provider`'s engine cannot answer now ('' when it can, or has no engine of its own to watch)."""
    bound = settings.READINESS_STALL_SECONDS
    runner = getattr(provider, "process", None)
    if runner is not None:
        if runner.state != "ready":  # its runner died: restarting with backoff
            return runner.reason or f"the runner of {model} is {runner.state}"
        silent = runner.silent_s()
        if silent > bound:
            return f"the runner of {model} (pid {runner.pid}) has not answered for {silent:.0f} s"
    progress_of = getattr(provider, "progress", None)
    progress = progress_of() if progress_of is not None else None
    if progress is None:
        return ""
    if not progress.alive:
        return f"the engine thread of {model} has stopped: {progress.failure or 'it ended'}"
    if progress.stalled_s > bound:
        return (
            f"the engine of {model} is stuck: no step completed for {progress.stalled_s:.0f} s "
            f"with {progress.running} running and {progress.waiting} waiting"
        )
    return ""


def provider_check() -> tuple[bool, str]:
    """Ready when a provider is loaded and its engine moves; before the first load, whether the configured one could
    load."""
    engine = get_engine()
    status = engine.status()
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
    problem = engine_problem(engine.provider, status.model or "the model")
    if problem:
        return False, problem
    detail = f"{status.provider}:{status.model} on {status.device}"
    if status.engine:
        detail += f" ({status.engine}{': ' + status.engine_note if status.engine_note else ''})"
    return True, f"{detail}; {status.reason}" if status.reason else detail


def models_check() -> tuple[bool, str]:
    """The pool beside the default: what is loaded, and which models failed.

    A model that failed to load, or whose runner is restarting, leaves the site ready (its requests are
    refused at once, others are served); a loaded model whose engine is stuck does not, since requests
    queued on it would wait without end.
    """
    state = get_engine().pool_state()
    loaded = sorted(mid for mid, row in state.items() if row["state"] == "loaded")
    failed = [row["reason"] for _mid, row in sorted(state.items()) if row["state"] == "unavailable"]  # "<id>: why"
    stuck = []
    for mid, row in sorted(state.items()):
        provider = row.get("provider")
        if provider is None or row.get("default"):
            continue  # the default is provider_check's
        problem = engine_problem(provider, mid)
        runner = getattr(provider, "process", None)
        if runner is not None and runner.state != "ready":
            failed.append(f"{mid}: {problem}")
        elif problem:
            stuck.append(problem)
    detail = f"loaded: {', '.join(loaded) or 'none'}"
    if failed:
        detail += f"; failed: {'; '.join(failed)}"
    if stuck:
        detail += f"; stuck: {'; '.join(stuck)}"
    return not stuck, detail
