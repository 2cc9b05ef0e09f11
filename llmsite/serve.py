"""Serve llmsite with daphne, and shut down gracefully on SIGTERM (or SIGINT).

    python -m llmsite.serve -b 127.0.0.1 -p 8000        # any of daphne's options; the application is llmsite's

daphne alone stops at once on SIGTERM: Twisted stops the reactor and daphne cancels every running
application, so answers are cut mid-stream with no error event, a plain answer gets no response at
all, and the runners and buffered request metrics are left to the interpreter's exit; daphne 4.2 has
no ASGI lifespan to hook into either. This is daphne's own command line (every option works the
same) with a server that handles the signals itself:

1. it stops taking new work (`llmsite.shutdown.drain`): new requests get 503 `shutting_down` with
   Retry-After, /readyz answers 503 "shutting down", new WebSockets are refused;
2. requests and generations already running get up to SHUTDOWN_GRACE_SECONDS to finish;
3. when the grace ends, those still running end with their protocol's error (each step of a
   generation is bounded by the deadline), and the models are closed, which ends their runner
   processes and any blocking answer on them; they then get FINISH_SECONDS to record how they ended;
4. it writes the buffered request metrics, closes open WebSockets (1001, going away), stops the
   reactor, and the process exits 0.

With TASKS_WORKER=embedded (the default) it also runs the background job workers: one
`manage.py db_worker` child per queue (`jobs.embedded`), started before it serves. On the signal
they are asked to finish their job in progress and take no other; at the end of the grace one
still running is stopped (its job and its training run recorded as failed) before the server exits.

A second signal ends the grace at once. Before the site serves (while the model loads at start-up),
a signal ends the process straight away, as with daphne: nothing is running yet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import daphne.http_protocol
from daphne.cli import CommandLineInterface  # imports daphne.server, which installs Twisted's asyncio reactor
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor

from jobs.embedded import EmbeddedWorkers, start_if_embedded
from llmsite.shutdown import drain

logger = logging.getLogger("llmsite.serve")


class RequestWithBodyLeftToDjango(daphne.http_protocol.WebRequest):
    """daphne's request without Twisted's own parsing of form bodies.

    Twisted parses a multipart/form-data body into `request.args`, which daphne never reads (Django
    parses the body it is handed), and answers a body it cannot parse with a bare 400 of its own,
    before the site sees the request: no JSON error, no log line, no metrics. It would also hold a
    second parsed copy of every upload. Twisted's `parsePOSTFormSubmission=False` turns that off;
    daphne's factory builds its requests from this module attribute, so it is replaced here.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)


daphne.http_protocol.WebRequest = RequestWithBodyLeftToDjango

APPLICATION = "llmsite.asgi:application"
FINISH_SECONDS = 10.0  # after the grace: how long answers ended by it may take to record their end
WEBSOCKET_CLOSE_SECONDS = 2.0  # how long open WebSockets get to answer the close frame
GOING_AWAY = 1001


class GracefulServer(Server):
    """daphne's server, draining on SIGTERM/SIGINT instead of stopping at once (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["signal_handlers"] = False  # Twisted's own would stop the reactor on the spot
        super().__init__(*args, **kwargs)
        self._shutdown: asyncio.Future[None] | None = None
        self._workers: EmbeddedWorkers | None = None

    def run(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self._workers = start_if_embedded()  # the application is imported by now: settings are ready
        try:
            super().run()
        finally:
            if self._workers is not None:  # whatever ended the server, its workers end with it
                self._workers.stop(timeout=FINISH_SECONDS)

    def _on_signal(self, signum: int, frame: Any) -> None:
        # A signal handler runs between two bytecodes of the main thread: hand over to the reactor.
        reactor.callFromThread(self._shutdown_requested, signal.Signals(signum).name)

    def _shutdown_requested(self, name: str) -> None:
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._shut_down(name), loop=reactor._asyncioEventloop)
        else:
            logger.warning("%s again: ending the grace period now", name)
            drain.begin(0)

    async def _shut_down(self, name: str) -> None:
        from django.conf import settings

        try:
            grace = settings.SHUTDOWN_GRACE_SECONDS
            drain.begin(grace)
            if self._workers is not None:
                self._workers.request_stop()  # each finishes its job in progress within the grace, then exits
            logger.info("%s: shutting down; %d requests running have %g s to finish", name, drain.active, grace)
            await _until_idle(lambda: drain.deadline or 0.0)
            while self._workers is not None and self._workers.alive() and not drain.expired():
                await asyncio.sleep(0.1)  # the jobs in progress get what is left of the grace
            if drain.active:
                logger.warning("%d requests still running when the grace period ended: ending them", drain.active)
            await asyncio.to_thread(_close_models)
            finished = time.monotonic() + FINISH_SECONDS
            await _until_idle(lambda: finished)
            if drain.active:
                logger.error("%d requests did not end after the models closed; stopping anyway", drain.active)
            if self._workers is not None:
                await asyncio.to_thread(self._workers.stop, FINISH_SECONDS)
            written = await asyncio.to_thread(_flush_metrics)
            logger.info("wrote %d buffered request metrics", written)
            await self._close_websockets()
        except Exception:  # whatever failed, the server still stops
            logger.exception("shutting down failed; stopping now")
        finally:
            logger.info("stopped")
            self.stop()

    async def _close_websockets(self) -> None:
        sockets = [
            protocol
            for protocol in list(self.connections)
            if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN
        ]
        for protocol in sockets:
            protocol.serverClose(code=GOING_AWAY)
        ends = time.monotonic() + WEBSOCKET_CLOSE_SECONDS
        while time.monotonic() < ends and any(
            "disconnected" not in self.connections.get(protocol, {"disconnected": True}) for protocol in sockets
        ):
            await asyncio.sleep(0.05)


async def _until_idle(until: Callable[[], float]) -> None:
    """Wait while requests run, until the time `until()` says (read again each time: a second signal moves it)."""
    while drain.active and time.monotonic() < until():
        await asyncio.sleep(0.05)


def _close_models() -> None:
    from inference.engine import get_engine

    get_engine().shutdown()


def _flush_metrics() -> int:
    from django.db import close_old_connections

    from dashboard.services import request_metrics_flush

    try:
        return request_metrics_flush()
    finally:
        close_old_connections()


class GracefulCommandLine(CommandLineInterface):
    server_class = GracefulServer


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmsite.settings")
    GracefulCommandLine().run([*(sys.argv[1:] if argv is None else argv), APPLICATION])
    return 0


if __name__ == "__main__":
    sys.exit(main())
