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
from inference.registry import (
    REMOTE_PROVIDERS,
    ProviderSpec,
    UnknownModel,
    model_id,
    serve_provider,
    spec_for_model,
    spec_from_settings,
)
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError, ServiceUnavailable
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
    def __init__(self, provider: Provider, spec: ProviderSpec, *, owned: bool, keep_alive: float | None = None):
        self.provider = provider
        self.spec = spec
        self.model_id = model_id(spec)
        self.owned = owned  # built by the engine, so the engine closes it
        self.leases = 0
        self.retired = False
        self.last_used = time.monotonic()
        self.keep_alive = keep_alive  # seconds idle before it unloads; None keeps it loaded
        self.memory_mb: float | None = None  # its runner's resident memory, measured after loading

    @property
    def local(self) -> bool:
        return self.spec.provider not in REMOTE_PROVIDERS


class _Loading:
    """A model being loaded into the pool: later askers wait on `done`; `error` says why it failed."""

    def __init__(self, spec: ProviderSpec):
        self.spec = spec
        self.done = threading.Event()
        self.error: ServiceUnavailable | None = None

    @property
    def local(self) -> bool:
        return self.spec.provider not in REMOTE_PROVIDERS


class Lease:
    """The provider a request runs on; release it (or leave the `with` block) when done."""

    def __init__(self, engine: Engine, slot: _Slot):
        self._engine = engine
        self._slot = slot
        self._released = False
        self.provider = slot.provider
        self.spec = slot.spec
        self.model_id = slot.model_id  # the id of the model that answers

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
    """The model pool: the default model (the active configuration) and every other model asked for; thread-safe.

    `lease()` is the default model; `lease(model)` any callable model by id, loaded on first use
    (once, however many ask at the same time; a load never holds up requests to loaded models).
    Models other than the default unload after `keep_alive` seconds idle (LLM_KEEP_ALIVE, or a
    request's own); before a local model loads, the least recently used idle ones (the default
    included) unload while LLM_MAX_LOADED_MODELS or LLM_MEMORY_BUDGET_MB would be exceeded. A
    model with a lease (an answer running) is never unloaded. `clock` is injectable for tests.
    """

    def __init__(
        self,
        builder: Callable[[ProviderSpec], Provider] = serve_provider,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._builder = builder
        self._clock = clock
        self._lock = threading.RLock()  # guards the fields below; held only for a moment
        self._room = threading.Condition(self._lock)  # notified when a lease ends or a model unloads
        self._load_lock = threading.Lock()  # one load/switch of the default at a time
        self._pool: dict[str, _Slot] = {}  # model id → a loaded model other than the default
        self._loading: dict[str, _Loading] = {}
        self._failed: dict[str, str] = {}  # model id → why its last load failed
        self._memory: dict[str, float] = {}  # model id → its runner's memory when last loaded (MB)
        self._slot: _Slot | None = None
        self._state = IDLE
        self._reason = ""
        self._pinned = False
        self._applied_key: tuple[Any, ...] | None = None
        self._loading_key: tuple[Any, ...] | None = None
        self._checked_at = 0.0
        self._switching = False
        self._shut = False  # shutdown() ran: nothing loads any more

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
    def lease(self, model: str | None = None, *, keep_alive: float | None = None) -> Lease:
        """The provider of `model` (default: the default model) for one request; loads it first when needed.

        Raises ApplicationError 404 (model_not_found) for an unknown id, ServiceUnavailable (503)
        with the reason while loading or after a failed load. `keep_alive` (seconds; negative:
        forever) replaces the model's idle time before unloading, as Ollama's per-request keep_alive.
        """
        if self._shut:
            raise ServiceUnavailable("the server is shutting down", code=ErrorCode.SHUTTING_DOWN)
        if model is not None:
            default = self.default_spec()
            try:
                spec = spec_for_model(model, default)
            except UnknownModel as exc:
                raise ApplicationError(exc.message, code=ErrorCode.MODEL_NOT_FOUND, status=404, field="model") from exc
            if not _same_model(spec, default):
                return self._lease_pooled(spec, keep_alive)
        # The default is loading (after an unload, an eviction, or at start): wait for it, as requests
        # for a loading pool model do, rather than answer 503 at once.
        wait = settings.LLM_RUNNER_START_TIMEOUT + settings.LLM_LOAD_WAIT_SECONDS
        for _attempt in range(3):  # staff may unload it again between our load and our lease: load again
            if self._slot is None and self._state == LOADING and self._load_lock.acquire(timeout=wait):
                self._load_lock.release()
            if self._slot is None and self._state == IDLE:
                with contextlib.suppress(ProviderUnavailable):  # the state says why; the 503 below tells
                    self.load()
            with self._lock:
                slot = self._slot
                if slot is not None:
                    slot.leases += 1
                    slot.last_used = self._clock()
                    return Lease(self, slot)
                if self._state != IDLE:
                    break
        if self._state == LOADING:
            raise ServiceUnavailable(f"the model is loading: {self._reason}", code=ErrorCode.LOADING)
        raise ServiceUnavailable(f"no model is loaded: {self._reason or 'not started'}")

    def default_model_id(self) -> str:
        """The id of the default model (loaded or configured)."""
        return model_id(self.default_spec())

    def default_spec(self) -> ProviderSpec:
        slot = self._slot
        return slot.spec if slot is not None else configured_spec()

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.leases -= 1
            slot.last_used = self._clock()
            close = slot.retired and slot.leases == 0
            self._room.notify_all()
        if close:
            self._close(slot)
        elif slot.keep_alive == 0 and slot.leases == 0:
            self.reap()  # keep_alive 0: unload as soon as the answer is done

    # --- the pool: models other than the default -----------------------------------------
    def _lease_pooled(self, spec: ProviderSpec, keep_alive: float | None) -> Lease:
        mid = model_id(spec)
        while True:
            with self._lock:
                slot = self._pool.get(mid)
                if slot is not None:
                    slot.leases += 1
                    slot.last_used = self._clock()
                    if keep_alive is not None:
                        slot.keep_alive = None if keep_alive < 0 else keep_alive
                    return Lease(self, slot)
                loading = self._loading.get(mid)
                loader = loading is None
                if loading is None:
                    loading = self._loading[mid] = _Loading(spec)
            if loader:
                try:
                    slot = self._load_pooled(mid, spec, keep_alive)
                except ServiceUnavailable as exc:
                    loading.error = exc
                    raise
                finally:
                    with self._lock:
                        del self._loading[mid]
                        self._room.notify_all()
                    loading.done.set()
                return Lease(self, slot)  # the loader's lease was taken when the slot went in
            if not loading.done.wait(settings.LLM_RUNNER_START_TIMEOUT + settings.LLM_LOAD_WAIT_SECONDS):
                raise ServiceUnavailable(f"{mid} is still loading", code=ErrorCode.LOADING)
            if loading.error is not None:
                raise loading.error

    def _load_pooled(self, mid: str, spec: ProviderSpec, keep_alive: float | None) -> _Slot:
        """Load `spec` into the pool (room made first for a local model); the slot comes back leased once."""
        if spec.provider not in REMOTE_PROVIDERS:
            self._make_room(mid)
        started = time.perf_counter()
        try:
            provider = self._builder(spec)
            provider.load()
        except Exception as exc:
            reason = f"{mid}: {getattr(exc, 'message', None) or exc}"
            logger.error("loading %s failed: %s", mid, reason)
            with self._lock:
                self._failed[mid] = reason
            raise ServiceUnavailable(reason) from exc
        if keep_alive is None:
            keep_alive = settings.LLM_KEEP_ALIVE
        slot = _Slot(provider, spec, owned=True, keep_alive=None if keep_alive < 0 else keep_alive)
        slot.memory_mb = _memory_of(provider)
        slot.leases = 1
        slot.last_used = self._clock()
        with self._lock:
            self._pool[mid] = slot
            self._failed.pop(mid, None)
            if slot.memory_mb is not None:
                self._memory[mid] = slot.memory_mb
            self._keep_budget_locked(slot)
        logger.info("loaded %s into the pool in %.1f s (%s MB)", mid, time.perf_counter() - started, slot.memory_mb)
        return slot

    def _loaded_local(self) -> list[_Slot]:
        slots = [slot for slot in self._pool.values() if slot.local]
        if self._slot is not None and self._slot.local:
            slots.append(self._slot)
        return slots

    def _make_room(self, mid: str, *, replacing: _Slot | None = None) -> None:
        """Unload least recently used idle local models until `mid` fits LLM_MAX_LOADED_MODELS and the memory budget.

        Waits (up to LLM_LOAD_WAIT_SECONDS) while every loaded model is answering; a model that
        is loading counts as loaded. One model always fits, whatever the budget.
        """
        limit, budget = settings.LLM_MAX_LOADED_MODELS, settings.LLM_MEMORY_BUDGET_MB
        deadline = time.monotonic() + settings.LLM_LOAD_WAIT_SECONDS  # real time, whatever the idle clock
        while True:
            with self._lock:
                loaded = [slot for slot in self._loaded_local() if slot is not replacing]
                others_loading = sum(1 for key, entry in self._loading.items() if key != mid and entry.local)
                used = sum(slot.memory_mb or 0 for slot in loaded)
                # A model never measured is expected to need what the largest measured one did.
                expected = self._memory.get(mid) or max(self._memory.values(), default=0)
                over_count = limit > 0 and len(loaded) + others_loading + 1 > limit
                over_memory = budget > 0 and used + expected > budget
                if not (over_count or over_memory) or not (loaded or others_loading):
                    return
                idle = [slot for slot in loaded if slot.leases == 0 and not (slot is self._slot and self._pinned)]
                victim = min(idle, key=lambda slot: slot.last_used) if idle else None
                if victim is not None:
                    why = "the model limit" if over_count else "the memory budget"
                    self._unload_locked(victim, f"to make room for {mid} ({why})", close=False)
            if victim is not None:
                self._close(victim)  # here and now: its memory is back before the new model loads
                continue
            with self._lock:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServiceUnavailable(
                        f"every loaded model is answering; {mid} cannot load until one is free",
                        code=ErrorCode.PROVIDER_BUSY,
                    )
                self._room.wait(min(remaining, 1.0))

    def _keep_budget_locked(self, loaded: _Slot) -> None:
        """After `loaded` was measured: unload least recently used idle models while the budget is exceeded."""
        budget = settings.LLM_MEMORY_BUDGET_MB
        while budget > 0:
            slots = self._loaded_local()
            if sum(slot.memory_mb or 0 for slot in slots) <= budget:
                return
            idle = [
                slot
                for slot in slots
                if slot is not loaded and slot.leases == 0 and not (slot is self._slot and self._pinned)
            ]
            if not idle:
                return
            self._unload_locked(
                min(idle, key=lambda slot: slot.last_used), f"to keep within the memory budget of {budget} MB"
            )

    def _unload_locked(self, slot: _Slot, why: str, *, close: bool = True) -> None:
        """Take `slot` out (lock held); it closes now if idle (`close=False`: the caller closes it), else when
        its last lease ends."""
        logger.info("unloading %s %s", slot.model_id, why)
        if slot is self._slot:
            self._slot = None
            self._state, self._reason = IDLE, ""
            self._applied_key = None
        elif self._pool.get(slot.model_id) is slot:
            del self._pool[slot.model_id]
        slot.retired = True
        if slot.leases == 0 and close:
            # Closing ends a runner process (seconds): off the lock, on a thread of its own.
            threading.Thread(target=self._close, args=(slot,), name=f"unload-{slot.model_id}", daemon=True).start()
        self._room.notify_all()

    def reap(self) -> list[str]:
        """Unload the models idle for longer than their keep_alive; returns their ids. The poller calls it."""
        now = self._clock()
        with self._lock:
            expired = [
                slot
                for slot in self._pool.values()
                if slot.leases == 0 and slot.keep_alive is not None and now - slot.last_used >= slot.keep_alive
            ]
            for slot in expired:
                self._unload_locked(slot, f"after {slot.keep_alive:g} s idle")
        return [slot.model_id for slot in expired]

    def unload(self, model: str) -> bool:
        """Unload a model now (staff); False when it was not loaded. One with answers running goes when they end."""
        with self._lock:
            default = self._slot
            if default is not None and default.model_id == model and not self._pinned:
                self._unload_locked(default, "on request")
                return True
            slot = self._pool.get(model)
            if slot is None:
                return False
            self._unload_locked(slot, "on request")
            return True

    def preload(self, model: str) -> None:
        """Load a model now (staff), as a first request would."""
        self.lease(model).release()

    def pool_state(self) -> dict[str, dict[str, Any]]:
        """Model id → {state, reason, memory_mb, leases, last_used (seconds ago), keep_alive, default} for every model
        the pool knows (loaded, loading, failed)."""
        now = self._clock()
        rows: dict[str, dict[str, Any]] = {}
        with self._lock:
            for mid, reason in self._failed.items():
                rows[mid] = {"state": "unavailable", "reason": reason}
            for mid in self._loading:
                rows[mid] = {"state": "loading", "reason": ""}
            slots = list(self._pool.values()) + ([self._slot] if self._slot is not None else [])
            for slot in slots:
                rows[slot.model_id] = {
                    "state": "loaded",
                    "reason": "",
                    "memory_mb": slot.memory_mb,
                    "leases": slot.leases,
                    "idle_s": round(now - slot.last_used, 1),
                    "keep_alive": slot.keep_alive,
                    "default": slot is self._slot,
                    "provider": slot.provider,
                }
        return rows

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
            twin = self._pool.get(slot.model_id)
            if twin is not None:  # the new default was loaded in the pool too: one copy is enough
                self._unload_locked(twin, "(it is the default model now)")
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
        if self._shut:
            raise ProviderUnavailable("the server is shutting down", permanent=False)
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
                if spec.provider not in REMOTE_PROVIDERS:
                    self._make_room(model_id(spec), replacing=current)
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
            slot = _Slot(provider, spec, owned=True)
            slot.last_used = self._clock()  # the pool's clock, as every lease sets it
            slot.memory_mb = _memory_of(provider)
            if slot.memory_mb is not None:
                with self._lock:
                    self._memory[slot.model_id] = slot.memory_mb
            self._install(slot)
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
            self._shut = False
            self._pinned = False
            self._applied_key = None
            self._checked_at = 0.0
            pooled = list(self._pool.values())
            self._pool.clear()
            self._failed.clear()
            self._memory.clear()
            for slot in pooled + ([old] if old is not None else []):
                slot.retired = True
            idle = [slot for slot in pooled + ([old] if old is not None else []) if slot.leases == 0]
        for slot in idle:
            self._close(slot)

    def shutdown(self) -> None:
        """Close every model now, answering or not, and load none after: the server is exiting.

        Closing a local model ends its runner process (SIGTERM, then SIGKILL after a while); an answer
        still running on it ends with an error. The models close side by side, so this takes as long as
        the slowest.
        """
        with self._lock:
            self._shut = True
            slots = list(self._pool.values()) + ([self._slot] if self._slot is not None else [])
            self._pool.clear()
            self._slot = None
            self._state, self._reason = FAILED, "the server is shutting down"
            for slot in slots:
                slot.retired = True
        closing = [threading.Thread(target=self._close, args=(slot,), name=f"close-{slot.model_id}") for slot in slots]
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join()

    def sync_with_config(self, *, force: bool = False, background: bool = True) -> bool:
        """Switch when the configuration changed since the last load; returns whether it changed.

        Throttled to one database read per LLM_CONFIG_CHECK_SECONDS unless `force`.
        """
        now = time.monotonic()
        if self._shut:
            return False
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


def _same_model(a: ProviderSpec, b: ProviderSpec) -> bool:
    return (a.provider, a.model) == (b.provider, b.model)


def _memory_of(provider: Provider) -> float | None:
    """The resident memory of a provider's runner process in MB; None in process or remote (not attributable)."""
    status = getattr(provider, "status", None)
    if status is None:
        return None
    try:
        return status().get("rss_mb")
    except Exception:  # a runner that does not answer now is measured next time
        return None


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
            run_logged(engine.reap, failure="unloading idle models failed", logger=logger)

    start_in_background("engine-startup", load_then_follow, failure="loading the model at start failed", logger=logger)


def wait_for_startup(timeout: float | None = None) -> bool:
    """Block until the start-up load finished (no-op when none started); True when it finished."""
    if _startup is None:
        return True
    return _startup.wait(settings.LLM_STARTUP_WAIT_SECONDS if timeout is None else timeout)
