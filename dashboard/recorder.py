"""An in-memory buffer of request samples that a background thread hands to a sink in batches.

Plain Python (no Django): the middleware calls `record()` on the hot path, which only appends
to a list under a lock; a daemon thread wakes every `interval` seconds, or as soon as
`batch_size` samples wait, and passes them to `sink` (which writes them to the database).
When the sink fails the batch goes back to the buffer, and the buffer never holds more than
`max_buffer` samples: past that, new samples are dropped and counted in `dropped`.

    recorder = Recorder(write_rows, interval=5.0, batch_size=500)
    recorder.record(sample)   # cheap, thread-safe, never touches the database
    recorder.flush()          # write whatever waits now (tests, shutdown)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sample:
    """One request as the middleware saw it."""

    created: datetime
    endpoint: str
    method: str
    status: int
    latency_ms: float
    streamed: bool
    user_id: int | None


Sink = Callable[[list[Sample]], None]


class Recorder:
    """Buffers samples; with `background=True` a daemon thread flushes them to `sink` in batches.

    Without the thread (tests, management commands) nothing is written until `flush()` is
    called, and the buffer still never grows past `max_buffer`.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        interval: float = 5.0,
        batch_size: int = 500,
        max_buffer: int = 50_000,
        background: bool = True,
        on_tick: Callable[[], None] | None = None,
    ):
        if interval <= 0 or batch_size < 1 or max_buffer < batch_size:
            raise ValueError("interval must be > 0, batch_size >= 1 and max_buffer >= batch_size")
        self.sink = sink
        self.interval = interval
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self.background = background
        self.on_tick = on_tick
        self.dropped = 0
        self.written = 0
        self._buffer: list[Sample] = []
        self._lock = threading.Lock()  # guards _buffer, dropped and the thread's start
        self._flush_lock = threading.Lock()  # one batch written at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._buffer)

    def record(self, sample: Sample) -> None:
        """Queue one sample (O(1), no I/O); the flusher writes it within `interval` seconds."""
        with self._lock:
            if len(self._buffer) >= self.max_buffer:
                self.dropped += 1
                return
            self._buffer.append(sample)
            full = len(self._buffer) >= self.batch_size
            if self._thread is None and self.background:
                self._start()
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Hand everything buffered to the sink, `batch_size` at a time; returns how many were written."""
        written = 0
        with self._flush_lock:
            while True:
                with self._lock:
                    batch = self._buffer[: self.batch_size]
                    del self._buffer[: self.batch_size]
                if not batch:
                    return written
                try:
                    self.sink(batch)
                except Exception:
                    logger.exception("writing %d request metrics failed; they are kept for the next flush", len(batch))
                    with self._lock:
                        room = self.max_buffer - len(self._buffer)
                        self.dropped += max(0, len(batch) - room)
                        self._buffer[:0] = batch[:room]
                    return written
                written += len(batch)
                self.written += len(batch)

    def stop(self, *, flush: bool = True) -> None:
        """Stop the thread (if any) and, by default, write what is still buffered."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.interval + 5)
        if flush:
            self.flush()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="metrics-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return  # stop() flushes itself, after the join
            try:
                self.flush()
                if self.on_tick is not None:
                    self.on_tick()
            except Exception:  # the flusher must outlive any single failure
                logger.exception("the metrics flusher failed")
