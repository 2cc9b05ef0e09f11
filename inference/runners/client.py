"""The web side of a runner: `RunnerProcess` starts, watches and restarts one; `RunnerProvider` talks to it.

Plain Python, no Django. `RunnerProvider` is an ordinary `Provider` to the engine and the
services: `load()` starts the process (and waits until the model is loaded there), `close()`
ends it, and every call is one connection to its socket (`wire.py`). If the runner dies it is
started again with backoff; calls in between fail fast with a retryable ProviderUnavailable
(HTTP 503), and a stream cut by the crash ends with a retryable ProviderError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from inference.providers import tools
from inference.providers.base import (
    Completion,
    GenerationRequest,
    ModelInfo,
    Provider,
    ProviderError,
    ProviderUnavailable,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TokenLogprob,
)
from inference.providers.batching import Progress
from inference.providers.constraints import ResponseFormat
from inference.providers.hf import HFProvider
from inference.providers.local import LocalOptions
from inference.runners import wire

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0  # seconds between restarts of a runner that keeps dying
STOP_GRACE = 10.0  # SIGTERM, then SIGKILL after this long
# How often a ready runner is asked for its `info` (its engine's progress), and how long one answer may take.
# Readiness reads the last answer, so a probe never waits on a runner; how long one has been silent is
# judged there (`inference.health`), against a bound far above a step's hold of the runner's GIL.
POLL_SECONDS = 1.0
POLL_TIMEOUT = 5.0

STARTING, READY, RESTARTING, FAILED, STOPPED = "starting", "ready", "restarting", "failed", "stopped"


class RunnerProcess:
    """One runner child process for `options`; thread-safe."""

    def __init__(self, options: LocalOptions, *, start_timeout: float = 300.0, nice: int = 0):
        self.options = options
        self.start_timeout = start_timeout
        self.nice = nice
        self._dir = tempfile.mkdtemp(prefix="llmsite-runner-")
        self.socket_path = os.path.join(self._dir, "runner.sock")
        self.state = STOPPED
        self.reason = ""  # why it is not ready (the load error, how it exited)
        self.restarts = 0
        self.info: dict[str, Any] = {}  # the runner's last answer to `info` (polled while it is ready)
        self.answered_at = time.monotonic()  # when it last answered (its handshake counts)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> dict[str, Any]:
        """Start the runner and wait until its model is loaded; returns its info or raises ProviderUnavailable."""
        with self._lock:
            self._stopping.clear()
            self.state = STARTING
            info = self._spawn()
        threading.Thread(
            target=self._watch, args=(self._proc,), name=f"runner-watch-{self.options.model}", daemon=True
        ).start()
        threading.Thread(target=self._poll, name=f"runner-poll-{self.options.model}", daemon=True).start()
        return info

    def _spawn(self) -> dict[str, Any]:
        command = [
            sys.executable,
            "-m",
            "inference.runners.server",
            "--socket",
            self.socket_path,
            "--options",
            json.dumps(self.options.as_dict()),
            "--nice",
            str(self.nice),
        ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        }
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, arguments built here
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=PROJECT_ROOT, env=env
        )
        self._proc = proc
        deadline = time.monotonic() + self.start_timeout
        assert proc.stdout is not None
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, remaining))
            if not ready:
                self._kill(proc)
                return self._failed(f"{self.options.model} did not load within {self.start_timeout:.0f} s")
            line = proc.stdout.readline()
            if not line:  # it exited before saying anything
                code = proc.wait()
                return self._failed(f"the runner of {self.options.model} exited with code {code} while loading")
            try:
                frame = json.loads(line)
            except ValueError:
                continue
            if "error" in frame:
                proc.wait(STOP_GRACE)
                return self._failed(str(frame["error"]))
            if "ready" in frame:
                self.info = frame["ready"]
                self.answered_at = time.monotonic()
                self.state, self.reason = READY, ""
                logger.info("runner of %s ready (pid %d, %s)", self.options.model, proc.pid, self.info.get("engine"))
                return self.info

    def _failed(self, reason: str) -> dict[str, Any]:
        self.state, self.reason = FAILED, reason
        raise ProviderUnavailable(reason)

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        """Restart the runner with backoff when it dies unasked."""
        backoff = BACKOFF_FIRST
        while True:
            code = proc.wait()
            if self._stopping.is_set():
                return
            why = _last_words(proc)
            self.state = RESTARTING
            self.reason = f"the runner of {self.options.model} exited with code {code}{why}; restarting"
            logger.error("%s (pid %d)", self.reason, proc.pid)
            while not self._stopping.wait(backoff):
                with self._lock:
                    if self._stopping.is_set():
                        return
                    try:
                        self._spawn()
                    except ProviderUnavailable as exc:
                        self.state = RESTARTING
                        self.reason = f"restarting the runner of {self.options.model} failed: {exc.message}"
                        logger.error("%s; next try in %.0f s", self.reason, min(backoff * 2, BACKOFF_MAX))
                        backoff = min(backoff * 2, BACKOFF_MAX)
                        continue
                self.restarts += 1
                backoff = BACKOFF_FIRST
                assert self._proc is not None
                proc = self._proc
                break
            else:
                return

    def _poll(self) -> None:
        """Ask the ready runner for its `info` every POLL_SECONDS, until stopped: readiness reads the last answer."""
        while not self._stopping.wait(POLL_SECONDS):
            if self.state != READY:
                continue
            try:
                self.info = self.call({"op": "info"}, timeout=POLL_TIMEOUT)
            except ProviderError:
                continue  # silent: `silent_s` grows, and readiness judges it
            self.answered_at = time.monotonic()

    def silent_s(self) -> float:
        """Seconds since the ready runner last answered (0 when it is not ready: its state says why)."""
        return round(time.monotonic() - self.answered_at, 1) if self.state == READY else 0.0

    def call(self, frame: dict[str, Any], *, timeout: float | None) -> dict[str, Any]:
        """One request, one answer line; the runner's error raised as its ProviderError.

        ProviderUnavailable when no runner listens, a retryable ProviderError when it does not answer in time.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise self.unavailable() from exc
        with sock:
            try:
                sock.sendall(wire.encode(frame))
                with sock.makefile("rb") as answers:
                    line = answers.readline(wire.MAX_LINE)
            except OSError as exc:  # a timeout included
                said = f"the runner of {self.options.model} did not answer: {exc}"
                raise ProviderError(said, permanent=False) from exc
        return self.answer(line)

    def answer(self, line: bytes) -> dict[str, Any]:
        """A frame the runner wrote; its error raised as the ProviderError it was."""
        if not line:
            raise ProviderError(f"the runner of {self.options.model} stopped while answering", permanent=False)
        frame = wire.decode(line)
        if "error" in frame:
            raise wire.error_from_dict(frame["error"])
        return frame

    def stop(self) -> None:
        """End the runner (SIGTERM, then SIGKILL after STOP_GRACE); it is not restarted."""
        self._stopping.set()
        with self._lock:
            proc, self._proc = self._proc, None
            self.state = STOPPED
        if proc is not None:
            self._kill(proc)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def unavailable(self) -> ProviderUnavailable:
        """The error for a call that found no runner to talk to."""
        if self.state == STOPPED:
            return ProviderUnavailable(f"{self.options.model} is not loaded", permanent=False)
        return ProviderUnavailable(
            self.reason or f"the runner of {self.options.model} is not answering", permanent=False
        )


def _last_words(proc: subprocess.Popen[bytes]) -> str:
    """What an exited runner said before it went (`{"exit": reason}` on its stdout), as ": reason"; '' if nothing."""
    if proc.stdout is None or proc.stdout.closed:
        return ""
    os.set_blocking(proc.stdout.fileno(), False)  # it has exited: read what is there, never wait for more
    try:
        lines = (proc.stdout.read() or b"").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            frame = json.loads(line)
        except ValueError:
            continue
        if isinstance(frame, dict) and "exit" in frame:
            return f" ({frame['exit']})"
    return ""


class RunnerProvider(Provider):
    """A local model served by its own runner process; see the module docstring.

    The prompt is rendered, counted and tokenised here, with the model's own tokenizer (an
    `HFProvider` that loads only that): the runner's engine holds its GIL for a whole step, so
    every call it need not answer makes time to first token shorter.
    """

    name = "hf"

    def __init__(self, options: LocalOptions, *, start_timeout: float = 300.0, nice: int = 0):
        super().__init__(options.model)
        self.options = options
        self.folder = Path(options.folder)
        self.process = RunnerProcess(options, start_timeout=start_timeout, nice=nice)
        self.tokens = HFProvider(options.model, options.folder)
        self.engine = ""  # type: ignore[misc]  (known once the runner has chosen)
        self.device = ""

    # --- lifecycle ----------------------------------------------------------------------
    def load(self) -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="runner-tokenizer") as pool:
            tokenizer = pool.submit(self.tokens.load_tokenizer)  # while the runner loads the model
            info = self.process.start()
            tokenizer.result()
        self._apply(info)

    def close(self) -> None:
        self.process.stop()

    def _apply(self, info: dict[str, Any]) -> None:
        self.engine = info.get("engine", "")  # type: ignore[misc]
        self.engine_note = info.get("engine_note", "")
        self.device = info.get("device", "")

    @property
    def info(self) -> dict[str, Any]:
        return self.process.info

    def status(self) -> dict[str, Any]:
        """The runner's live facts (memory, queue); the last known ones with `state` when it does not answer."""
        try:
            info = self._call({"op": "info"}, timeout=2.0)
        except ProviderError:
            return {**self.process.info, "state": self.process.state, "reason": self.process.reason}
        self.process.info = info
        self.process.answered_at = time.monotonic()
        return {**info, "state": self.process.state, "reason": self.process.reason, "restarts": self.process.restarts}

    def progress(self) -> Progress | None:
        """The runner's engine progress as it last reported it (polled every POLL_SECONDS); None without an engine
        thread."""
        values = self.process.info.get("progress")
        return Progress.from_dict(values) if values else None

    # --- tokens -------------------------------------------------------------------------
    @property
    def context_window(self) -> int | None:
        return self.tokens.context_window

    @property
    def identity(self) -> str:
        return self.info.get("identity") or self.model

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(self.model, f"{self.folder} ({self.engine or 'runner'})")]

    def count_tokens(self, text: str) -> int:
        return self.tokens.count_tokens(text)

    def render(self, request: GenerationRequest) -> str:
        return self.tokens.render(request)

    def check_response_format(self, response_format: ResponseFormat) -> None:
        """Both local engines enforce every format `ResponseFormat.parse` accepts (OpenVINO with its twin's help)."""

    def score(self, request: GenerationRequest, ids: list[int] | None = None) -> tuple[TokenLogprob | None, ...]:
        """The prompt's tokens' log-probabilities, computed in the runner (the prompt tokenised here)."""
        if ids is None:
            ids = self.tokens.prepare(request)
        frame = {"op": "score", "request": wire.request_to_dict(request), "ids": ids}
        return wire.scores_from_list(self._call(frame, timeout=None)["scores"])

    def check_features(self, request: GenerationRequest) -> None:
        """Local models call tools (`inference/providers/tools.py`) and report log-probabilities (both engines);
        the rest as the base checks it."""
        tools.check(request, self.check_response_format)
        super().check_features(replace(request, tools=(), logprobs=None))

    def _generate_frame(self, request: GenerationRequest, ids: list[int], *, stream: bool) -> dict[str, Any]:
        return {"op": "generate", "request": wire.request_to_dict(request), "ids": ids, "stream": stream}

    # --- calls --------------------------------------------------------------------------
    def _call(self, frame: dict[str, Any], *, timeout: float | None = 60.0) -> dict[str, Any]:
        """One request, one answer line."""
        return self.process.call(frame, timeout=timeout)

    def generate(self, request: GenerationRequest) -> Completion:
        # Tool calls: the runner generates constrained text; it is read back into calls here.
        request, parser = tools.prepare(request)
        frame = self._generate_frame(request, self.tokens.prepare(request), stream=False)
        completion = wire.completion_from_dict(self._call(frame, timeout=None)["end"])
        return parser.completion(completion) if parser is not None else completion

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Deltas as the runner writes them (read into tool call deltas here); closing the iterator closes the
        connection, which cancels."""
        request, parser = tools.prepare(request)
        return tools.parsed(self._stream(request), parser)

    async def _stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        ids = await asyncio.to_thread(self.tokens.prepare, request)  # raises PromptTooLong before any work
        try:
            reader, writer = await asyncio.open_unix_connection(self.process.socket_path, limit=wire.MAX_LINE)
        except OSError as exc:
            raise self.process.unavailable() from exc
        try:
            writer.write(wire.encode(self._generate_frame(request, ids, stream=True)))
            await writer.drain()
            while True:
                frame = self.process.answer(await reader.readline())
                if "delta" in frame:
                    yield TextDelta(frame["delta"], wire.logprobs_from_list(frame.get("logprobs")))
                    continue
                completion = wire.completion_from_dict(frame["end"])
                yield StreamEnd(
                    completion.usage,
                    completion.finish_reason,
                    completion.text,
                    completion.ttft,
                    tool_calls=completion.tool_calls,
                )
                return
        finally:
            writer.close()
