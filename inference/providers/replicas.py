"""Replicas: one remote model served by several OpenAI-compatible deployments (vLLM, TGI, Ollama nodes).

Plain Python, no Django. `ReplicaProvider` is a provider like the others (the engine, the cache and
the records see one model); behind it each replica is an ordinary `OpenAIProvider` at its own base
URL, and `ReplicaSet` decides which one answers:

- **Least in flight.** A request goes to the replica in service with the fewest requests running;
  ties go round robin, so an idle pool spreads its work.
- **Cooldown.** A replica that fails with a failure another replica may not share (connection
  refused or reset, a timeout, a 5xx, a 429) is taken out of service for `cooldown` seconds,
  doubling with each failure in a row up to `max_cooldown` (an upstream's own Retry-After, when
  longer, is honoured up to that bound). Failures that would be the same everywhere (the request
  refused as invalid, the API key rejected, an unknown model) leave it in service and reach the
  client as they are.
- **Probed back.** When its cooldown ends, a thread of the provider asks the replica for
  `GET <base>/models` (one request, the connect timeout): an answer puts it back in service, a
  failure starts a longer cooldown. Until then no request is sent to it, so no client waits on a
  dead node. (An Azure deployment cannot be listed: it comes back when its cooldown ends.)
- **Retried before the first token, never after.** A request whose replica fails before any text
  reached the client goes to another replica in service, each replica at most once. A stream that
  already sent text ends with the error, as a single upstream's does. A blocking answer (`generate`)
  has sent the client nothing until it returns, so it moves to another replica whenever its own fails.
- **All out.** With no replica in service left to try, the request fails with an `UpstreamError`
  of status 503 whose `retry_after` is the time to the next probe.

The replicas' own providers should not retry (`HttpOptions.max_retries=0`): moving to another
replica is the retry, and waiting on a dead one only delays it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from inference.providers.base import (
    Completion,
    GenerationRequest,
    ModelInfo,
    Provider,
    ProviderUnavailable,
    StreamEnd,
    StreamEvent,
)
from inference.providers.remote import RemoteProvider, UpstreamError
from llmsite.error_codes import ErrorCode

logger = logging.getLogger(__name__)

UP, COOLING_DOWN, PROBING = "up", "cooling_down", "probing"


def public_url(url: str) -> str:
    """A base URL fit to show: scheme, host, port and path; any user:password@, query or fragment removed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def takes_out(error: UpstreamError) -> bool:
    """Whether `error` is the replica's own failure (another replica may answer), not the request's or the setup's."""
    return not error.permanent


@dataclass(frozen=True)
class ReplicaHealth:
    """What one replica looks like now; `retry_in` is the seconds until it is probed (None when in service)."""

    url: str
    state: str  # up, cooling_down, probing
    in_flight: int
    failures: int  # every failure so far, requests and probes
    last_error: str
    retry_in: float | None

    @property
    def healthy(self) -> bool:
        return self.state == UP

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "state": self.state,
            "healthy": self.healthy,
            "in_flight": self.in_flight,
            "failures": self.failures,
            "last_error": self.last_error,
            "retry_in": self.retry_in,
        }


class Replica:
    """One deployment and its health; the ReplicaSet's lock guards the fields."""

    def __init__(self, index: int, provider: Any, url: str):
        self.index = index
        self.provider = provider
        self.url = url
        self.in_flight = 0
        self.failures = 0
        self.streak = 0  # failures in a row: the cooldown grows with it
        self.out_until: float | None = None  # None: in service
        self.probing = False
        self.last_error = ""

    def __repr__(self) -> str:
        return f"<Replica {self.url}>"


class ReplicaSet:
    """Chooses the replica for each request and keeps their health; thread-safe, `clock` injectable for tests."""

    def __init__(
        self,
        replicas: Sequence[tuple[Any, str]],
        *,
        cooldown: float = 10.0,
        max_cooldown: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not replicas:
            raise ValueError("a replica set needs at least one replica")
        self.members = [Replica(index, provider, url) for index, (provider, url) in enumerate(replicas)]
        self.cooldown = cooldown
        self.max_cooldown = max(cooldown, max_cooldown)
        self._clock = clock
        self._lock = threading.RLock()  # RLock: the prober waits on `changed` and reads the set under it
        self._turn = 0  # where round robin starts among replicas equally busy
        self.changed = threading.Condition(self._lock)  # notified when a replica goes out

    # --- choosing -------------------------------------------------------------------------
    def choose(self, skip: Sequence[Replica] = ()) -> Replica | None:
        """The replica in service with the fewest requests in flight (not in `skip`), now counted; None if none."""
        with self._lock:
            n = len(self.members)
            candidates = [r for r in self.members if r.out_until is None and r not in skip]
            if not candidates:
                return None
            chosen = min(candidates, key=lambda r: (r.in_flight, (r.index - self._turn) % n))
            chosen.in_flight += 1
            self._turn = (chosen.index + 1) % n
            return chosen

    def done(self, replica: Replica) -> None:
        """The request on `replica` ended (answered, failed or cancelled)."""
        with self._lock:
            replica.in_flight -= 1

    # --- health ---------------------------------------------------------------------------
    def succeeded(self, replica: Replica) -> None:
        """`replica` answered: its failures in a row are forgotten."""
        with self._lock:
            replica.streak = 0

    def failed(self, replica: Replica, error: UpstreamError) -> None:
        """`replica` failed on its own account: out of service for a cooldown that grows with each failure in a row."""
        with self._lock:
            if replica.out_until is not None and not replica.probing:
                # Already out: the requests that were running on it when it failed end one by one. One outage
                # is one step of the cooldown, however many answers it broke.
                replica.failures += 1
                replica.last_error = error.message
                return
            self._take_out(replica, error.message, error.retry_after)

    def _take_out(self, replica: Replica, why: str, retry_after: float | None = None) -> None:
        replica.failures += 1
        replica.streak += 1
        replica.last_error = why
        wait = min(self.max_cooldown, self.cooldown * 2 ** (replica.streak - 1))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_cooldown))
        until = self._clock() + wait
        # A request that started before another's failure may fail later: keep the later end.
        replica.out_until = max(until, replica.out_until or until)
        logger.warning("replica %s is out of service for %.0f s: %s", replica.url, wait, why)
        self.changed.notify_all()

    def due(self) -> list[Replica]:
        """Replicas out of service whose cooldown has ended, marked as being probed (probe each, then `probed`)."""
        now = self._clock()
        with self._lock:
            ready = [r for r in self.members if r.out_until is not None and not r.probing and r.out_until <= now]
            for replica in ready:
                replica.probing = True
            return ready

    def probed(self, replica: Replica, error: str = "") -> None:
        """The probe of `replica` answered (`error` empty: back in service) or failed (a longer cooldown)."""
        with self._lock:
            replica.probing = False
            if error:
                self._take_out(replica, error)
                return
            replica.out_until = None
            logger.info("replica %s is back in service", replica.url)

    def next_due_in(self) -> float | None:
        """Seconds until the next replica's cooldown ends (0 when one is due now); None when all are in service."""
        now = self._clock()
        with self._lock:
            ends = [r.out_until for r in self.members if r.out_until is not None and not r.probing]
            probing = any(r.probing for r in self.members)
        if ends:
            return max(0.0, min(ends) - now)
        return 0.0 if probing else None

    def any_out(self) -> bool:
        with self._lock:
            return any(r.out_until is not None for r in self.members)

    def health(self) -> list[ReplicaHealth]:
        now = self._clock()
        with self._lock:
            return [
                ReplicaHealth(
                    url=r.url,
                    state=UP if r.out_until is None else PROBING if r.probing else COOLING_DOWN,
                    in_flight=r.in_flight,
                    failures=r.failures,
                    last_error=r.last_error,
                    retry_in=None if r.out_until is None else round(max(0.0, r.out_until - now), 1),
                )
                for r in self.members
            ]


class ReplicaProvider(Provider):
    """One remote model on several deployments; see the module docstring. `replicas`: (provider, base URL) pairs.

    The providers come unloaded and should not retry on their own; this provider loads and closes them.
    """

    engine = ""
    device = "remote"

    def __init__(
        self,
        model: str,
        replicas: Sequence[tuple[RemoteProvider, str]],
        *,
        cooldown: float = 10.0,
        max_cooldown: float = 300.0,
        probe_timeout: float = 5.0,
        background_probes: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(model)
        self.replicas = ReplicaSet(
            [(provider, public_url(url)) for provider, url in replicas],
            cooldown=cooldown,
            max_cooldown=max_cooldown,
            clock=clock,
        )
        first = self.replicas.members[0].provider
        self.name = first.name  # records and prices go by the API spoken ("openai"), as with one server
        self.base_urls = [url for _provider, url in replicas]
        self.probe_timeout = probe_timeout
        self._background = background_probes
        self._prober: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<ReplicaProvider {self.name}:{self.model} at {', '.join(r.url for r in self.replicas.members)}>"

    @property
    def providers(self) -> list[RemoteProvider]:
        return [replica.provider for replica in self.replicas.members]

    @property
    def label(self) -> str:
        return f"{self.name} at {len(self.replicas.members)} replicas"

    @property
    def host(self) -> str:
        return ", ".join(p.host for p in self.providers)

    @property
    def identity(self) -> str:
        # Every replica serves the same weights: one cache entry whichever of them answered.
        return f"{self.model}@" + ",".join(sorted(p.identity.partition("@")[2] for p in self.providers))

    @property
    def missing_key(self) -> bool:
        return any(p.missing_key for p in self.providers)

    def health(self) -> list[ReplicaHealth]:
        return self.replicas.health()

    # --- lifecycle ------------------------------------------------------------------------
    def load(self) -> None:
        """Check each replica's configuration; no request is made (a node down now is taken out on first use)."""
        for provider in self.providers:
            provider.load()

    def close(self) -> None:
        with self.replicas.changed:
            self._closed = True
            self.replicas.changed.notify_all()
        for provider in self.providers:
            provider.close()

    # --- tokens ---------------------------------------------------------------------------
    @property
    def context_window(self) -> int | None:
        return None

    def count_tokens(self, text: str) -> int:
        return self.providers[0].count_tokens(text)

    # --- features: every replica speaks the same API ---------------------------------------
    def check_response_format(self, response_format: Any) -> None:
        self.providers[0].check_response_format(response_format)

    def check_features(self, request: GenerationRequest) -> None:
        self.providers[0].check_features(request)

    def render(self, request: GenerationRequest) -> str:
        return self.providers[0].render(request)

    # --- choosing and failing over --------------------------------------------------------
    def _next(self, tried: list[Replica], last: UpstreamError | None) -> Replica:
        """The replica for the next try; raises the 503 when none is left in service."""
        if self._closed:
            raise ProviderUnavailable(f"{self.label}: the provider was closed")
        replica = self.replicas.choose(tried)
        if replica is not None:
            tried.append(replica)
            return replica
        wait = self.replicas.next_due_in()
        why = f"; the last failure: {last.message}" if last is not None else ""
        raise UpstreamError(
            f"every replica of {self.model} is out of service; the next is probed in {wait or 0:.0f} s{why}",
            status=503,
            code=ErrorCode.UNAVAILABLE,
            retry_after=math.ceil(wait) if wait else 1,
        )

    def _failed(self, replica: Replica, error: UpstreamError) -> None:
        """Take the replica out when the failure is its own; raises `error` when it is not (no other replica helps)."""
        if not takes_out(error):
            raise error
        self.replicas.failed(replica, error)
        self._start_prober()

    # --- generation -----------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Completion:
        """Blocking: call it from a worker thread. Moves to another replica on a replica's failure."""
        tried: list[Replica] = []
        last: UpstreamError | None = None
        while True:
            replica = self._next(tried, last)
            try:
                completion = replica.provider.generate(request)
            except UpstreamError as error:
                self._failed(replica, error)
                last = error
                continue
            finally:
                self.replicas.done(replica)
            self.replicas.succeeded(replica)
            return completion

    async def agenerate(self, request: GenerationRequest) -> Completion:
        """`generate` on the event loop: the text is collected, so a replica failing mid-answer is retried too."""
        tried: list[Replica] = []
        last: UpstreamError | None = None
        while True:
            replica = self._next(tried, last)
            try:
                completion = await replica.provider.agenerate(request)
            except UpstreamError as error:
                self._failed(replica, error)
                last = error
                continue
            finally:
                self.replicas.done(replica)
            self.replicas.succeeded(replica)
            return completion

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """The answer of one replica; a replica that fails before its first text hands over to another.

        Once text was passed on, a failure ends the stream with that replica's UpstreamError. Closing
        the iterator closes the replica's response and counts as no failure.
        """
        tried: list[Replica] = []
        last: UpstreamError | None = None
        while True:
            replica = self._next(tried, last)
            produced = False
            try:
                async with contextlib.aclosing(replica.provider.stream(request)) as events:
                    async for event in events:
                        if not isinstance(event, StreamEnd) and not produced:  # text or a tool call
                            produced = True
                            self.replicas.succeeded(replica)
                        yield event
                self.replicas.succeeded(replica)
                return
            except UpstreamError as error:
                if produced:
                    if takes_out(error):
                        self.replicas.failed(replica, error)
                        self._start_prober()
                    raise
                self._failed(replica, error)
                last = error
            finally:
                self.replicas.done(replica)

    def models(self, timeout: float | None = None) -> list[ModelInfo]:
        """What the first replica in service that answers lists; raises the last UpstreamError when none does."""
        error: UpstreamError | None = None
        for replica in sorted(self.replicas.members, key=lambda r: r.out_until is not None):
            try:
                return replica.provider.models(timeout=timeout)
            except UpstreamError as exc:
                error = exc
        assert error is not None
        raise error

    # --- probing back ---------------------------------------------------------------------
    def probe_due(self) -> int:
        """Probe every replica whose cooldown has ended (`GET <base>/models`); returns how many were probed."""
        due = self.replicas.due()
        for replica in due:
            try:
                replica.provider.models(timeout=self.probe_timeout)
            except UpstreamError as error:
                self.replicas.probed(replica, f"probe: {error.message}")
            except Exception as error:  # a probe must never end the prober
                self.replicas.probed(replica, f"probe: {error}")
            else:
                self.replicas.probed(replica)
        return len(due)

    def _start_prober(self) -> None:
        if not self._background:
            return
        with self.replicas.changed:
            if self._closed or (self._prober is not None and self._prober.is_alive()):
                return
            self._prober = threading.Thread(target=self._probe_loop, name=f"replicas-{self.model}", daemon=True)
            self._prober.start()

    def _probe_loop(self) -> None:
        """Sleep until a cooldown ends, probe, repeat; ends once every replica is back (a failure starts it again)."""
        while True:
            with self.replicas.changed:
                if self._closed:
                    return
                wait = self.replicas.next_due_in()
                if wait is None:
                    self._prober = None
                    return
                if wait > 0:
                    self.replicas.changed.wait(wait)
                    continue
            self.probe_due()
