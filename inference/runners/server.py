"""A runner: one local model in a process of its own, answering on a Unix socket (`wire.py`).

    python -m inference.runners.server --socket PATH --options JSON

Plain Python, no Django. It builds the provider from `LocalOptions`, loads it, then writes one
line on its stdout — `{"ready": info}` or `{"error": message}` — and serves until SIGTERM or
until its parent goes away (its stdin closes). Anything libraries print goes to stderr, which
the parent's log receives.

Generation is `HFProvider.start`: the engine thread (the OpenVINO or batching scheduler) calls
`emit` after each step, and `emit` writes the delta straight to the client's socket, so a token
leaves this process right after the step that made it, with no hand-over to another thread.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import socket
import socketserver
import sys
import threading
from pathlib import Path
from typing import Any

from inference.providers.base import Completion, ProviderError
from inference.providers.local import LocalOptions, build_local
from inference.runners import wire

logger = logging.getLogger("inference.runners")

# A client that stops reading for this long loses its answer instead of stalling the engine thread.
SEND_TIMEOUT = 10.0


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class Runner:
    """The loaded provider and the facts the web side asks for."""

    def __init__(self, provider: Any):
        self.provider = provider

    def info(self) -> dict[str, Any]:
        p = self.provider
        scheduler = getattr(p, "scheduler", None)
        return {
            "model": p.model,
            "engine": p.engine,
            "engine_note": p.engine_note,
            "identity": p.identity,
            "context_window": p.context_window,
            "device": getattr(p, "device", ""),
            "precision": getattr(p, "precision", None),
            "batching_off_reason": getattr(p, "batching_off_reason", ""),
            "pid": os.getpid(),
            "rss_mb": round(rss_mb(), 1),
            "running": scheduler.running if scheduler is not None else 0,
            "waiting": scheduler.waiting if scheduler is not None else 0,
            "produced_tokens": getattr(p, "produced_tokens", 0),
        }


class _Handler(socketserver.StreamRequestHandler):
    server: RunnerServer

    def handle(self) -> None:
        line = self.rfile.readline(wire.MAX_LINE)
        if not line:
            return
        self._lock = threading.Lock()
        try:
            frame = wire.decode(line)
            op = frame.get("op")
            runner = self.server.runner
            if op == "info":
                self._send(runner.info())
            elif op == "count":
                self._send({"tokens": runner.provider.count_tokens(frame["text"])})
            elif op == "render":
                self._send({"text": runner.provider.render(wire.request_from_dict(frame["request"]))})
            elif op == "generate":
                ids = frame.get("ids")
                if ids is not None and not (isinstance(ids, list) and all(type(i) is int for i in ids)):
                    raise ValueError("ids must be a list of token ids")
                self._generate(wire.request_from_dict(frame["request"]), ids=ids, stream=bool(frame.get("stream")))
            else:
                self._send({"error": {"kind": "error", "message": f"unknown op {op!r}", "permanent": True}})
        except (ValueError, KeyError, TypeError) as exc:  # a malformed frame: the client's bug, said plainly
            self._send({"error": {"kind": "error", "message": f"bad runner request: {exc}", "permanent": True}})
        except ProviderError as exc:
            self._send({"error": wire.error_to_dict(exc)})

    def _send(self, frame: dict[str, Any]) -> bool:
        """Write one frame; False when the client is gone (its answer is then cancelled)."""
        try:
            with self._lock:
                self.request.sendall(wire.encode(frame))
            return True
        except OSError:
            return False

    def _generate(self, request: Any, *, ids: list[int] | None, stream: bool) -> None:
        cancel = threading.Event()
        finished = threading.Event()
        wake_read, wake_write = socket.socketpair()

        def emit(text: str) -> None:
            if not self._send({"delta": text}):
                cancel.set()

        def done(result: Completion | BaseException) -> None:
            if isinstance(result, Completion):
                self._send({"end": wire.completion_to_dict(result)})
            else:
                self._send({"error": wire.error_to_dict(result)})
            finished.set()
            wake_write.send(b"x")

        self.request.settimeout(SEND_TIMEOUT)
        try:
            self.server.runner.provider.start(request, done=done, emit=emit if stream else None, cancel=cancel, ids=ids)
            # Wait for the end, or for the client to hang up (EOF): that cancels within one token.
            while not finished.is_set():
                readable, _, _ = select.select([self.request, wake_read], [], [])
                if self.request in readable:
                    try:
                        gone = not self.request.recv(4096)
                    except OSError:
                        gone = True
                    if gone:
                        cancel.set()
                        finished.wait()
        finally:
            wake_read.close()
            wake_write.close()


class RunnerServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    # Every call is a connection: a burst of clients must queue here, not be refused (a full Unix
    # socket backlog refuses a non-blocking connect with EAGAIN; socketserver's default is 5).
    request_queue_size = 1024

    def __init__(self, path: str, runner: Runner):
        self.runner = runner
        super().__init__(path, _Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve one local model on a Unix socket.")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--options", required=True, help="LocalOptions as JSON")
    args = parser.parse_args(argv)
    options = LocalOptions.from_dict(json.loads(args.options))
    # The handshake keeps the real stdout; everything else printed goes to stderr.
    handshake = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("LLM_RUNNER_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s runner[{options.model}] %(levelname)s %(name)s: %(message)s",
    )

    def say(frame: dict[str, Any]) -> None:
        handshake.write(json.dumps(frame) + "\n")
        handshake.flush()

    try:
        provider = build_local(options)
        provider.load()
    except ProviderError as exc:
        say({"error": exc.message})
        return 1
    except Exception as exc:  # an unexpected failure still reaches the parent as a reason
        logger.exception("loading %s failed", options.model)
        say({"error": f"loading {options.model} failed: {exc}"})
        return 1
    Path(args.socket).unlink(missing_ok=True)
    runner = Runner(provider)
    server = RunnerServer(args.socket, runner)

    def stop(*_args: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)

    def watch_parent() -> None:
        sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or died
        stop()

    threading.Thread(target=watch_parent, name="watch-parent", daemon=True).start()
    say({"ready": runner.info()})
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        Path(args.socket).unlink(missing_ok=True)
        provider.close()
        logging.shutdown()
    # Straight out: the parent-watching thread still blocks on stdin, and interpreter shutdown with it
    # alive aborts ("could not acquire lock for <stdin>").
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
