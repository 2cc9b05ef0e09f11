"""The engine: holds the active provider, loads it lazily, swaps it atomically, reports its state.

Built lazily like Channels' layer registry: nothing loads at import. `get_engine()` returns
the process-wide engine; `engine.set(provider)` pins a provider (tests), `engine.reset()`
drops it. Callers take a lease for the duration of one request:

    with get_engine().lease() as lease:
        completion = lease.provider.generate(request)

A swap installs the new provider at once; leases taken before it keep the old provider until
they end, and the old one is closed when its last lease is released.

Where the configuration comes from: the active `ProviderConfig` row if there is one, else
settings (LLM_PROVIDER, LLM_MODEL, DEVICE). Other processes (`manage.py reload_model`, the
admin of another worker) change the row; each server notices through a cheap version check
— at most once per LLM_CONFIG_CHECK_SECONDS on a request, and by a poller thread in server
processes — so no message bus is needed and a restarted server comes up with the same model.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DatabaseError, close_old_connections
from django.dispatch import receiver

from inference.providers.base import Provider, ProviderUnavailable
from inference.registry import ProviderSpec, serve_provider, spec_from_settings
from llmsite.error_codes import ErrorCode
from llmsite.errors import ServiceUnavailable
from llmsite.processes import run_logged, start_in_background

logger = logging.getLogger(__name__)

IDLE, LOADING, READY, FAILED = "idle", "loading", "ready", "failed"


@dataclass(frozen=True)
class EngineStatus:
    state: str  # idle (nothing loaded yet), loading, ready, failed
    reason: str  # why failed/loading, or the last failed switch while still ready
    provider: str | None = None
    model: str | None = None
    device: str | None = None
    identity: str | None = None
    engine: str | None = None  # transformers or openvino for a local model
    engine_note: str = ""  # why that engine serves rather than the preferred one


class _Slot:
    def __init__(self, provider: Provider, spec: ProviderSpec, *, owned: bool):
        self.provider = provider
        self.spec = spec
        self.owned = owned  # built by the engine, so the engine closes it
        self.leases = 0
        self.retired = False


class Lease:
    """The provider a request runs on; release it (or leave the `with` block) when done."""

    def __init__(self, engine: Engine, slot: _Slot):
        self._engine = engine
        self._slot = slot
        self._released = False
        self.provider = slot.provider
        self.spec = slot.spec

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._engine._release(self._slot)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def configured_spec() -> ProviderSpec:
    """The active ProviderConfig row as a spec, else settings; never raises on a missing table."""
    from inference.models import ProviderConfig

    try:
        row = (
            ProviderConfig.objects.filter(active=True)
            .values("pk", "version", "provider", "model", "device", "parameters")
            .first()
        )
    except DatabaseError:  # not migrated yet: settings are the configuration
        return spec_from_settings()
    if row is None:
        return spec_from_settings()
    params = tuple(sorted((row["parameters"] or {}).items()))
    return ProviderSpec(row["provider"], row["model"], row["device"], params, ("db", row["pk"], row["version"]))


def _report(spec: ProviderSpec, state: str, detail: str) -> None:
    """Tell the ProviderConfig row what this process did with it (reload_model waits on this)."""
    if not spec.key or spec.key[0] != "db":
        return
    from inference.models import ProviderConfig

    try:
        ProviderConfig.objects.filter(pk=spec.key[1], version=spec.key[2]).update(
            applied_version=spec.key[2], state=state, state_detail=detail[:2000]
        )
    except DatabaseError:
        logger.exception("could not report provider state")


class Engine:
    """Holds the active provider; thread-safe."""

    def __init__(self, builder: Callable[[ProviderSpec], Provider] = serve_provider):
        self._builder = builder
        self._lock = threading.RLock()  # guards the fields below; held only for a moment
        self._load_lock = threading.Lock()  # one load/switch at a time
        self._slot: _Slot | None = None
        self._state = IDLE
        self._reason = ""
        self._pinned = False
        self._applied_key: tuple[Any, ...] | None = None
        self._loading_key: tuple[Any, ...] | None = None
        self._checked_at = 0.0
        self._switching = False

    # --- state ------------------------------------------------------------------------
    def status(self) -> EngineStatus:
        with self._lock:
            slot = self._slot
            if slot is None:
                return EngineStatus(self._state, self._reason)
            p = slot.provider
            return EngineStatus(
                self._state,
                self._reason,
                p.name,
                p.model,
                getattr(p, "device", None) or slot.spec.device,
                p.identity,
                p.engine or None,
                p.engine_note,
            )

    @property
    def provider(self) -> Provider | None:
        """The active provider right now (no lease: for inspection, not for generating)."""
        slot = self._slot
        return slot.provider if slot is not None else None

    # --- leases -------------------------------------------------------------------------
    def lease(self) -> Lease:
        """The active provider for one request; loads it first when nothing was loaded yet.

        Raises ServiceUnavailable (503) with the reason while loading or after a failed load.
        """
        if self._slot is None and self._state == IDLE:
            with contextlib.suppress(ProviderUnavailable):  # the state says why; the 503 below tells
                self.load()
        with self._lock:
            slot = self._slot
            if slot is None:
                if self._state == LOADING:
                    raise ServiceUnavailable(f"the model is loading: {self._reason}", code=ErrorCode.LOADING)
                raise ServiceUnavailable(f"no model is loaded: {self._reason or 'not started'}")
            slot.leases += 1
            return Lease(self, slot)

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.leases -= 1
            close = slot.retired and slot.leases == 0
        if close:
            self._close(slot)

    def _close(self, slot: _Slot) -> None:
        if slot.owned:
            try:
                slot.provider.close()
            except Exception:
                logger.exception("closing %r failed", slot.provider)

    def _install(self, slot: _Slot) -> None:
        with self._lock:
            old, self._slot = self._slot, slot
            self._state, self._reason = READY, ""
            if old is not None:
                old.retired = True
            close_old = old is not None and old.leases == 0
        if close_old:
            self._close(old)

    # --- loading and switching ----------------------------------------------------------
    def load(self, spec: ProviderSpec | None = None, *, commit: Callable[[], ProviderSpec] | None = None) -> Provider:
        """Build and load `spec` (default: the configured one), then swap it in atomically.

        `commit`, when given, runs after the load succeeded and before the swap (it writes the
        ProviderConfig row and returns the spec with its key), so other checkers never load twice.
        On failure the previous provider (if any) keeps serving and ProviderUnavailable is
        raised; with nothing to fall back to, the engine is `failed` with the reason.
        """
        with self._load_lock:
            spec = spec or configured_spec()
            current = self._slot
            if commit is None and current is not None and spec.key and spec.key == self._applied_key:
                return current.provider  # someone applied it while we waited for the lock
            with self._lock:
                self._loading_key = spec.key
                if self._slot is None:
                    self._state, self._reason = LOADING, spec.label()
            _report(spec, LOADING, "")
            started = time.perf_counter()
            try:
                provider = self._builder(spec)
                provider.load()
            except Exception as exc:
                reason = f"{spec.label()}: {getattr(exc, 'message', None) or exc}"
                logger.error("loading %s failed: %s", spec.label(), reason)
                with self._lock:
                    self._applied_key = spec.key
                    if self._slot is None:
                        self._state = FAILED
                    self._reason = f"last switch failed: {reason}" if self._slot is not None else reason
                _report(spec, FAILED, reason)
                if isinstance(exc, ProviderUnavailable):
                    raise
                raise ProviderUnavailable(reason) from exc
            finally:
                self._loading_key = None
            if commit is not None:
                try:
                    spec = commit()
                except BaseException:
                    provider.close()
                    raise
            self._install(_Slot(provider, spec, owned=True))
            with self._lock:
                self._applied_key = spec.key
                self._pinned = False
            logger.info("serving %s (loaded in %.1f s)", spec.label(), time.perf_counter() - started)
            _report(spec, READY, f"{provider.identity} on {getattr(provider, 'device', spec.device)}")
            return provider

    def set(self, provider: Provider, spec: ProviderSpec | None = None) -> None:
        """Install an already loaded provider and stop following the configuration (tests, benchmarks).

        The caller owns it: the engine never closes it.
        """
        spec = spec or ProviderSpec(provider.name, provider.model, getattr(provider, "device", "") or "auto")
        self._install(_Slot(provider, spec, owned=False))
        with self._lock:
            self._pinned = True
            self._applied_key = spec.key

    def reset(self) -> None:
        """Drop the active provider (closed once idle) and go back to lazily loading from the configuration."""
        with self._lock:
            old, self._slot = self._slot, None
            self._state, self._reason = IDLE, ""
            self._pinned = False
            self._applied_key = None
            self._checked_at = 0.0
            if old is not None:
                old.retired = True
            close_old = old is not None and old.leases == 0
        if close_old:
            self._close(old)

    def sync_with_config(self, *, force: bool = False, background: bool = True) -> bool:
        """Switch when the configuration changed since the last load; returns whether it changed.

        Throttled to one database read per LLM_CONFIG_CHECK_SECONDS unless `force`.
        """
        now = time.monotonic()
        if self._pinned or self._state == IDLE:
            return False  # pinned by set(), or nothing loaded yet: the first lease loads the current config
        if not force and now - self._checked_at < settings.LLM_CONFIG_CHECK_SECONDS:
            return False
        self._checked_at = now
        spec = configured_spec()
        if spec.key == self._applied_key or spec.key == self._loading_key:
            return False
        if not background:
            with contextlib.suppress(ProviderUnavailable):  # reported in the state and on the row
                self.load(spec)
            return True
        with self._lock:
            if self._switching:
                return True
            self._switching = True

        def run() -> None:
            try:
                self.load(spec)
            except ProviderUnavailable:
                pass
            finally:
                self._switching = False
                close_old_connections()

        threading.Thread(target=run, name="engine-switch", daemon=True).start()
        return True


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine (created on first use; it loads nothing until asked)."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = Engine()
    return _engine


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    served_by = ("LLM_PROVIDER", "LLM_MODEL", "DEVICE", "MODELS_DIR", "LLM_DTYPE", "LLM_ENGINE", "LLM_RUNNER")
    if setting in served_by and _engine is not None:
        _engine.reset()


# --- server start-up ------------------------------------------------------------------------
_startup: threading.Event | None = None


def start_for_server() -> None:
    """Load the configured provider in the background and poll for configuration changes.

    Called by InferenceConfig.ready() in server processes (LLM_LOAD_AT_START=auto) only.
    """
    global _startup
    if _startup is not None:
        return
    _startup = threading.Event()
    done = _startup
    spec = spec_from_settings()
    if spec.provider == "hf":
        from inference.providers.hf import preload_imports

        preload_imports()  # here, before any loader thread of any app starts

    def load_then_follow() -> None:
        engine = get_engine()
        try:
            engine.load()
        except ProviderUnavailable:
            pass  # the site stays up; /readyz says why
        finally:
            done.set()
            close_old_connections()
        check = functools.partial(engine.sync_with_config, force=True, background=False)
        while True:
            time.sleep(settings.LLM_CONFIG_CHECK_SECONDS)
            run_logged(check, failure="checking the provider configuration failed", logger=logger)

    start_in_background("engine-startup", load_then_follow, failure="loading the model at start failed", logger=logger)


def wait_for_startup(timeout: float | None = None) -> bool:
    """Block until the start-up load finished (no-op when none started); True when it finished."""
    if _startup is None:
        return True
    return _startup.wait(settings.LLM_STARTUP_WAIT_SECONDS if timeout is None else timeout)
