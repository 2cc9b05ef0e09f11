"""A runner: one local model in a process of its own, answering on a Unix socket (`wire.py`).

    python -m inference.runners.server --socket PATH --options JSON

Plain Python, no Django. It builds the provider from `LocalOptions`, loads it, then writes one
line on its stdout — `{"ready": info}` or `{"error": message}` — and serves until SIGTERM, until
its parent goes away (its stdin closes), or until its engine thread dies: then it writes
`{"exit": reason}` and exits with status 70, and its parent restarts it. Anything libraries print
goes to stderr, which the parent's log receives.

`info` reports the engine's `progress` (alive, running, waiting, seconds without a completed step):
the web side polls it and /readyz judges it (`inference.health`). It is answered on a thread of its
own, so it answers while the engine thread computes (after at most one step's hold of the GIL).

Generation is `HFProvider.start`: the engine thread (the OpenVINO or batching scheduler) calls
`emit` after each step, and `emit` writes the delta straight to the client's socket, so a token
leaves this process right after the step that made it, with no hand-over to another thread.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

from inference.providers.base import Completion, ProviderError
from inference.providers.batching import Progress
from inference.providers.local import LocalOptions, build_local
from inference.runners import wire

logger = logging.getLogger("inference.runners")

# A client that stops reading for this long loses its answer instead of stalling the engine thread.
SEND_TIMEOUT = 10.0
# How often the runner looks whether its engine thread still lives.
ENGINE_CHECK_SECONDS = 1.0
# The exit status of a runner whose engine thread died (EX_SOFTWARE): its parent restarts it.
ENGINE_DIED = 70


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class Runner:
    """The loaded provider and the facts the web side asks for."""

    def __init__(self, provider: Any):
        self.provider = provider

    def progress(self) -> Progress | None:
        """The engine thread's progress; None when the provider has no engine thread (one request at a time)."""
        progress = getattr(self.provider, "progress", None)
        return progress() if progress is not None else None

    def info(self) -> dict[str, Any]:
        p = self.provider
        scheduler = getattr(p, "scheduler", None)
        progress = self.progress()
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
            "progress": progress.as_dict() if progress is not None else None,
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
            elif op == "score":
                request = wire.request_from_dict(frame["request"])
                scores = runner.provider.score(request, ids=_token_ids(frame.get("ids")))
                self._send({"scores": wire.scores_to_list(scores)})
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

        def emit(text: str, logprobs: Any = None) -> None:
            frame: dict[str, Any] = {"delta": text}
            if logprobs is not None:
                frame["logprobs"] = wire.logprobs_to_list(logprobs)
            if not self._send(frame):
                cancel.set()

        def done(result: Completion | BaseException) -> None:
            if isinstance(result, Completion):
                self._send({"end": wire.completion_to_dict(result)})
            else:
                self._send({"error": wire.error_to_dict(result)})
            finished.set()
            with contextlib.suppress(OSError):  # the handler saw `finished` first and closed the pair
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


def _token_ids(ids: Any) -> list[int] | None:
    if ids is not None and not (isinstance(ids, list) and all(type(i) is int for i in ids)):
        raise ValueError("ids must be a list of token ids")
    return ids


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
    parser.add_argument("--nice", type=int, default=0, help="added to the process's niceness before loading")
    args = parser.parse_args(argv)
    if args.nice:
        # Before any thread starts, so the engine's threads inherit it: when generation keeps every
        # core busy, the web process (probes, cache hits, streaming frames) is served first.
        os.nice(args.nice)
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

    exit_code = 0

    def stop(*_args: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)

    def watch_parent() -> None:
        sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or died
        stop()

    def watch_engine() -> None:
        # A dead engine thread never answers again: exit, so the parent restarts the runner, and say why
        # (the parent reads this line after the exit and names the reason in /readyz and its log).
        nonlocal exit_code
        while True:
            time.sleep(ENGINE_CHECK_SECONDS)
            progress = runner.progress()
            if progress is not None and not progress.alive:
                reason = f"the engine thread died: {progress.failure or 'it ended'}"
                logger.error("%s; exiting so that the runner is restarted", reason)
                say({"exit": reason})
                exit_code = ENGINE_DIED
                stop()
                return

    threading.Thread(target=watch_parent, name="watch-parent", daemon=True).start()
    say({"ready": runner.info()})
    threading.Thread(target=watch_engine, name="watch-engine", daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        Path(args.socket).unlink(missing_ok=True)
        provider.close()
        logging.shutdown()
    # Straight out: the parent-watching thread still blocks on stdin, and interpreter shutdown with it
    # alive aborts ("could not acquire lock for <stdin>").
    os._exit(exit_code)


if __name__ == "__main__":
    sys.exit(main())
