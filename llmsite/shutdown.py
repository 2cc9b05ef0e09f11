"""Draining: what a serving process does between SIGTERM and its exit (`python -m llmsite.serve` drives it).

`drain` is the process-wide state. Once `drain.begin(grace)` has run:

- new HTTP requests get 503 `shutting_down` with Retry-After (`DrainMiddleware`), except the probes:
  /healthz stays 200 (the process lives), /readyz answers 503 "shutting down"; new WebSocket
  connections are refused (`tracked`), and a new generation on an open one gets an `error`;
- requests already running go on: `drain.active` counts them (`tracked`), and the generations of
  WebSockets (`drain.tracking()` in the completion service);
- each step of a running generation waits at most until the grace ends (`drain.bounded()`): a
  generation still running then stops with `GraceExpired`, which the completion service turns into the
  error its protocol already sends for a failure (SSE `event: error`, an OpenAI-style error chunk, a
  WebSocket `error`) and records as failed.

Times are `time.monotonic()`, which is also the clock of asyncio's event loops, so one deadline serves
both. Nothing here needs settings: the server reads SHUTDOWN_GRACE_SECONDS and passes the grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.urls import Resolver404, resolve
from django.utils.decorators import sync_and_async_middleware

PROBES = frozenset({"/healthz", "/readyz"})  # answered while draining: an orchestrator is watching them
WEBSOCKET_SERVICE_RESTART = 1012  # the close code for a WebSocket refused while draining (RFC 6455 registry)


class GraceExpired(Exception):
    """The shutdown grace period ended before the bounded step did."""

    message = "the server is shutting down: the answer did not finish within its grace period"

    def __init__(self) -> None:
        super().__init__(self.message)


class Drain:
    """Whether this process is draining, until when, and how much work is still running; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadline: float | None = None  # time.monotonic() when the grace ends; None while serving
        self._active = 0
        self._bounds: dict[asyncio.Timeout, asyncio.AbstractEventLoop] = {}  # steps running under bounded()

    @property
    def draining(self) -> bool:
        return self._deadline is not None

    @property
    def deadline(self) -> float | None:
        return self._deadline

    @property
    def active(self) -> int:
        """Requests and generations running now."""
        return self._active

    def remaining(self) -> float:
        """Seconds left of the grace (0 once it ended, or while not draining)."""
        deadline = self._deadline
        return max(0.0, deadline - time.monotonic()) if deadline is not None else 0.0

    def expired(self) -> bool:
        """Whether the grace has ended: work still running is being stopped."""
        deadline = self._deadline
        return deadline is not None and time.monotonic() >= deadline

    def retry_after(self) -> str:
        """The Retry-After of a refusal: when the grace ends (at least a second)."""
        return str(max(1, math.ceil(self.remaining())))

    def begin(self, grace: float) -> None:
        """Take no new work; what runs has `grace` seconds to finish. Calling it again can only shorten the grace."""
        deadline = time.monotonic() + max(0.0, grace)
        with self._lock:
            if self._deadline is not None and self._deadline <= deadline:
                return
            self._deadline = deadline
            bounds = list(self._bounds.items())
        for bound, loop in bounds:  # steps that began before: they end at the new deadline too
            with contextlib.suppress(RuntimeError):  # a loop already closed has no step left to end
                loop.call_soon_threadsafe(_reschedule, bound, deadline)

    def reset(self) -> None:
        """Serve again (tests)."""
        with self._lock:
            self._deadline = None

    @contextlib.contextmanager
    def tracking(self) -> Iterator[None]:
        """Count the block as work in flight: the server waits for it (up to the grace) before it stops."""
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    @contextlib.asynccontextmanager
    async def bounded(self) -> AsyncIterator[None]:
        """Run the block until the grace ends at most (no bound while serving); raise GraceExpired if it ends first.

        Keep the block to one step (one awaited event): never across a `yield` of an async generator,
        since the bound cancels whatever the task awaits when it fires.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as bound:
                with self._lock:
                    self._bounds[bound] = loop
                    deadline = self._deadline
                try:
                    if deadline is not None:
                        bound.reschedule(deadline)
                    yield
                finally:
                    with self._lock:
                        self._bounds.pop(bound, None)
        except TimeoutError:
            if bound.expired():
                raise GraceExpired() from None
            raise


def _reschedule(bound: asyncio.Timeout, deadline: float) -> None:
    with contextlib.suppress(RuntimeError):  # the step ended before this ran
        bound.reschedule(deadline)


drain = Drain()


# --- the web side ---------------------------------------------------------------------------------
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def tracked(app: ASGIApp) -> ASGIApp:
    """`app`, with every HTTP request counted as work in flight and new WebSockets refused while draining."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            with drain.tracking():
                await app(scope, receive, send)
            return
        if scope["type"] == "websocket" and drain.draining:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": WEBSOCKET_SERVICE_RESTART})
            return
        await app(scope, receive, send)

    return application


def shutting_down_error() -> Any:
    """The error new work gets while draining: 503 `shutting_down`, Retry-After when the grace ends."""
    from llmsite.error_codes import ErrorCode
    from llmsite.errors import ServiceUnavailable

    return ServiceUnavailable(
        "the server is shutting down; send the request to another instance, or again once it is back",
        code=ErrorCode.SHUTTING_DOWN,
        headers={"Retry-After": drain.retry_after()},
    )


@sync_and_async_middleware
def DrainMiddleware(get_response: Callable[..., Any]) -> Callable[..., Any]:  # noqa: N802 - like the classes beside it
    """Answer every request but the probes with 503 `shutting_down` while draining."""
    from llmsite.errors import error_response

    def refusal(request: Any) -> Any:
        if not drain.draining or request.path in PROBES:
            return None
        with contextlib.suppress(Resolver404):  # the metrics name a refusal by its route, as any request
            request.resolver_match = resolve(request.path_info)
        return error_response(request, shutting_down_error())

    if iscoroutinefunction(get_response):

        async def middleware(request: Any) -> Any:
            return refusal(request) or await get_response(request)

    else:

        def middleware(request: Any) -> Any:  # type: ignore[misc]
            return refusal(request) or get_response(request)

    return middleware
