"""Continuous batching for the local provider: one thread owns the model, every request shares its steps.

Plain Python (torch, no Django). `BatchScheduler.submit(job)` queues a `BatchJob`; the scheduler
thread loops:

1. admit waiting jobs, oldest first, while the running batch has room (`max_batch_size`) and the
   step's token budget allows (`max_batched_tokens`: the prompt tokens of the joining requests,
   left-padded to the longest of them, plus one per running request);
2. prefill the newcomers together (left padding, an attention mask, position ids counted from
   each row's first real token), sample their first token, then merge their KV cache into the
   running batch (the shorter of the two caches is padded on the left);
3. one decoding step for the whole running batch: each row feeds its last token, gets its own
   logits (masked first for a row whose output is constrained: structured output, `constrain`),
   samples with its own parameters and generator, and leaves the batch as soon as it has
   finished (end of sequence, a stop string, its token limit, or cancellation); columns that are
   padding in every remaining row are trimmed.

Masks and position ids are exactly what `model.generate` builds for a left-padded batch, so a
row's greedy output is the one it would get alone (tests compare them token for token).

Jobs wait in a bounded queue while the batch is full; `submit` raises `QueueFull` (a retryable
`ProviderError`, which the site answers with 503) when the queue is full too. A job whose
`cancel` event is set leaves before the next step. Callbacks run on the scheduler thread: keep
them short (the provider detokenizes there and hands text to an event loop).

`progress()` says whether the thread is alive and how long work has waited for a completed step:
readiness (`inference.health`) fails on a dead thread or a stuck step. An error outside the per-step
handler ends the thread, but never silently: every waiting and running job ends with the reason,
and new ones are refused with it.

Tests drive the loop step by step instead of racing it: inside `with scheduler.paused():` the
loop starts no step, so jobs submitted there are all waiting when it resumes; `advance(n)` runs
exactly n steps and returns once they are done. With no pause open the loop runs as it always
did: the seam costs it a few attribute reads and writes per step.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from inference.providers.base import ProviderError, ProviderUnavailable, SamplingParams
from inference.providers.constraints import ResponseFormat

logger = logging.getLogger(__name__)

EndReason = Literal["eos", "stop", "length", "cancelled"]


class QueueFull(ProviderError):
    """The scheduler's batch and waiting queue are both full: try again shortly (HTTP 503)."""

    def __init__(self, limit: int):
        super().__init__(f"the local model is busy: {limit} requests are already waiting; try again shortly")
        self.limit = limit


@dataclass(frozen=True)
class BatchLimits:
    """How much the scheduler takes on at once."""

    max_batch_size: int = 16  # requests decoding together
    max_batched_tokens: int = 2048  # tokens one forward pass may process (joining prompts + running rows)
    max_queue: int = 64  # requests waiting for a place in the batch; beyond that, QueueFull

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_batched_tokens < 1 or self.max_queue < 0:
            raise ValueError("max_batch_size and max_batched_tokens must be at least 1, max_queue at least 0")

    def check_room(self, *, waiting: int, running: int) -> None:
        """Raise QueueFull when one more job would wait beyond `max_queue` (the places free at the next step count)."""
        free = max(0, self.max_batch_size - running)
        if waiting >= free + self.max_queue:
            raise QueueFull(self.max_queue)


@dataclass(frozen=True)
class Progress:
    """Whether an engine thread is moving: what readiness (`inference.health`) judges a local model by.

    `stalled_s` counts from the last completed step, or from when work arrived at an idle engine,
    and only while work waits or runs: an idle engine is never stalled, however long it rests.
    """

    alive: bool  # the engine thread runs
    running: int
    waiting: int
    stalled_s: float  # seconds without a completed step while work waits or runs; 0 when idle
    steps: int
    failure: str = ""  # why the engine thread ended, when it ended by an error

    @classmethod
    def measure(
        cls, *, thread: threading.Thread, moved_at: float, running: int, waiting: int, steps: int, failure: str
    ) -> Progress:
        busy = running > 0 or waiting > 0
        stalled = round(time.monotonic() - moved_at, 1) if busy else 0.0
        # A thread whose loop failed is ending: it is not alive for its work even before it has returned.
        return cls(thread.is_alive() and not failure, running, waiting, stalled, steps, failure)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Progress:
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


@dataclass(eq=False)
class BatchJob:
    """One request for the scheduler, with the callbacks it reports through (all on the scheduler thread).

    - `constrain(logits)`: sets to -inf, in place, the logits ([1, vocab]) of tokens this row may not
      produce next (structured output); runs before `pick` or greedy's argmax. None: any token.
    - `pick(logits)`: the next token from this row's float32 logits of shape [1, vocab]; None means greedy.
    - `see(logits)`: this row's raw logits ([1, vocab]), before `constrain` masks them: what the
      request's log-probabilities are computed from (`inference.providers.logprobs`). None: not asked.
    - `on_token(token)`: called once per generated token, in order; returning True ends the job ("stop").
    - `on_end(tokens, reason, error)`: called exactly once; `error` is set when the job failed.
    """

    prompt_ids: list[int]
    max_new_tokens: int
    on_token: Callable[[int], bool]
    on_end: Callable[[list[int], EndReason, BaseException | None], None]
    pick: Callable[[Any], int] | None = None
    constrain: Callable[[Any], None] | None = None
    see: Callable[[Any], None] | None = None
    # The request's sampling values, for engines that sample themselves (OpenVINO); this scheduler uses `pick`.
    sampling: SamplingParams | None = None
    # The request's response format, for engines that constrain output themselves (OpenVINO); this one uses `constrain`.
    response_format: ResponseFormat | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    tokens: list[int] = field(default_factory=list)
    _ended: bool = False

    def end(self, reason: EndReason, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self.on_end(self.tokens, reason, error)
        except Exception:  # a broken callback must not take the scheduler down
            logger.exception("batch job end callback failed")


def supports_batching(model: Any) -> str:
    """'' when the scheduler can drive `model`; else why not (the provider then generates one by one)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return "not a decoder-only model"
    try:
        cache = DynamicCache(config=config)
    except Exception as exc:  # an architecture whose cache cannot be built from its config
        return f"no dynamic cache for this model: {exc}"
    if any(type(layer) is not DynamicLayer for layer in cache.layers):
        return "the model's cache has sliding-window or other non-dynamic layers"
    return ""


class _Batch:
    """The running rows and their shared, left-padded KV cache."""

    def __init__(self, jobs: list[BatchJob], cache: Any, mask: Any, positions: Any, last: Any):
        self.jobs = jobs  # row i of every tensor below belongs to jobs[i]
        self.cache = cache  # DynamicCache: per layer keys/values [rows, heads, columns, head_dim]
        self.mask = mask  # [rows, columns] long: 1 where a column holds a real token of that row
        self.positions = positions  # [rows] long: the position id of each row's next token
        self.last = last  # [rows] long: each row's last sampled token (the next step's input)

    def __len__(self) -> int:
        return len(self.jobs)

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows`, then drop leading columns that no remaining row uses."""
        import torch

        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        self.jobs = [self.jobs[i] for i in rows]
        self.mask = self.mask.index_select(0, index)
        self.positions = self.positions.index_select(0, index)
        self.last = self.last.index_select(0, index)
        used = self.mask.any(dim=0)
        first = int(used.int().argmax()) if bool(used.any()) else 0
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, first:]
            layer.values = layer.values.index_select(0, index)[:, :, first:]
        self.mask = self.mask[:, first:]

    def merge(self, other: _Batch) -> None:
        """Append `other`'s rows, left-padding whichever cache is shorter."""
        import torch

        mine, theirs = self.mask.shape[1], other.mask.shape[1]
        width = max(mine, theirs)

        def pad(tensor: Any, columns: int, dim: int) -> Any:
            if columns == 0:
                return tensor
            shape = list(tensor.shape)
            shape[dim] = columns
            return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)

        for layer, new in zip(self.cache.layers, other.cache.layers, strict=True):
            layer.keys = torch.cat([pad(layer.keys, width - mine, 2), pad(new.keys, width - theirs, 2)])
            layer.values = torch.cat([pad(layer.values, width - mine, 2), pad(new.values, width - theirs, 2)])
        self.mask = torch.cat([pad(self.mask, width - mine, 1), pad(other.mask, width - theirs, 1)])
        self.positions = torch.cat([self.positions, other.positions])
        self.last = torch.cat([self.last, other.last])
        self.jobs += other.jobs


class BatchScheduler:
    """Owns `model` on one thread and runs every submitted job in a continuously refilled batch."""

    def __init__(
        self,
        model: Any,
        *,
        eos_token_ids: Iterable[int],
        pad_token_id: int,
        limits: BatchLimits | None = None,
        name: str = "llm",
    ):
        self.model = model
        self.device = next(model.parameters()).device
        # Only the last position's logits are needed; models that cannot say so compute them all.
        self._keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        self.eos = frozenset(eos_token_ids)
        self.pad = pad_token_id
        self.limits = limits or BatchLimits()
        self._waiting: collections.deque[BatchJob] = collections.deque()
        lock = threading.Lock()
        self._wake = threading.Condition(lock)  # the loop waits here for work, or for a pause to end
        self._between_steps = threading.Condition(lock)  # paused() and advance() wait here for a step to end
        self._closing = False
        self._batch: _Batch | None = None
        self._stepping = False  # the loop is inside a step (and does not hold the lock)
        self._pauses = 0  # open paused() blocks: while any is open, the loop only runs the steps advance() grants
        self._granted = 0  # steps advance() granted that the paused loop has not started yet
        self.steps = 0  # forward passes so far (prefills and decoding steps); tests count shared steps with it
        self.name = name
        self.failure = ""  # why the scheduler thread ended, when an error ended it
        self._joining: list[BatchJob] = []  # the jobs being admitted to the step in progress
        self._moved_at = time.monotonic()  # the last completed step, or when work came to an idle loop
        self._thread = threading.Thread(target=self._loop, name=f"batch-{name}", daemon=True)
        self._thread.start()

    # --- the public side ----------------------------------------------------------------
    def submit(self, job: BatchJob) -> None:
        """Queue `job`; raises QueueFull when `max_queue` jobs already wait, ProviderUnavailable once closed."""
        with self._wake:
            if self._closing:
                raise ProviderUnavailable(self._closed_reason(), permanent=False)
            self.limits.check_room(waiting=len(self._waiting), running=self.running)
            if not self._waiting and self._batch is None:
                self._moved_at = time.monotonic()  # an idle loop's stall clock starts with its work
            self._waiting.append(job)
            self._wake.notify()

    def progress(self) -> Progress:
        """Whether the scheduler thread is alive and moving (readiness asks, from any thread)."""
        return Progress.measure(
            thread=self._thread,
            moved_at=self._moved_at,
            running=self.running + len(self._joining),  # jobs being prefilled run too
            waiting=len(self._waiting),
            steps=self.steps,
            failure=self.failure,
        )

    def _closed_reason(self) -> str:
        if self.failure:
            return f"the engine thread of {self.name} stopped: {self.failure}"
        return "the local model is shutting down"

    @property
    def running(self) -> int:
        batch = self._batch
        return len(batch) if batch is not None else 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current step; waiting and running jobs end with ProviderUnavailable."""
        with self._wake:
            self._closing = True
            self._wake.notify()
            self._between_steps.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # --- stepping by hand (tests) --------------------------------------------------------
    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the loop between two steps for the block: it starts no step there but those `advance` grants.

        Entering waits for the step in progress to end, so the block sees settled state (`running`,
        each job's tokens); jobs submitted in it join together at the first step after it. Not for
        a job's callbacks: they run inside a step.
        """
        with self._wake:
            self._pauses += 1
            while self._stepping:
                self._between_steps.wait()
        try:
            yield
        finally:
            with self._wake:
                self._pauses -= 1
                if not self._pauses:
                    self._granted = 0  # a step granted but never started (advance timed out) is not owed
                self._wake.notify()

    def advance(self, steps: int = 1, timeout: float = 30.0) -> None:
        """Inside `paused()`: run `steps` loop steps (admit, prefill newcomers, one decoding step) and wait for them.

        Raises RuntimeError when no job waits or runs (the step would never start), TimeoutError
        when a step takes longer than `timeout` seconds (a stuck model, not a slow machine).
        """
        with self._wake:
            if not self._pauses:
                raise RuntimeError("advance() steps a paused scheduler: call it inside `with scheduler.paused():`")
            for _ in range(steps):
                if not self._waiting and self._batch is None:
                    raise RuntimeError("nothing to step: no job waits or runs")
                self._granted = 1
                self._wake.notify()
                done = self._between_steps.wait_for(
                    lambda: self._closing or not (self._granted or self._stepping), timeout
                )
                if not done:
                    raise TimeoutError(f"a scheduler step took longer than {timeout} s")
                if self._closing:
                    raise ProviderUnavailable("the local model is shutting down", permanent=False)

    # --- the scheduler thread -----------------------------------------------------------
    def _loop(self) -> None:
        """Step until closed; whatever ends the thread, every waiting and running job learns it."""
        try:
            self._step_until_closed()
            failure = ProviderUnavailable("the local model was unloaded", permanent=False)
        except BaseException as exc:  # outside the per-step handler: a bug in the loop itself ends the thread
            logger.exception("the scheduler thread of %s failed", self.name)
            with self._wake:
                self.failure = f"{type(exc).__name__}: {exc}"
                self._closing = True  # new jobs are refused with the reason, not left waiting forever
                self._stepping = False
                self._between_steps.notify_all()
            failure = ProviderUnavailable(self._closed_reason(), permanent=False)
        with self._wake:
            jobs = self._joining + list(self._waiting) + (self._batch.jobs if self._batch is not None else [])
            self._joining = []
            self._waiting.clear()
            self._batch = None
        for job in jobs:
            job.end("cancelled", failure)

    def _step_until_closed(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                with self._wake:
                    self._stepping = False
                    if self._pauses:
                        self._between_steps.notify_all()
                    while not self._closing and (self._held() or (not self._waiting and self._batch is None)):
                        self._wake.wait()
                    if self._closing:
                        break
                    if self._pauses:
                        self._granted -= 1
                    self._stepping = True
                    newcomers = self._admit()
                try:
                    if newcomers:
                        self._prefill(newcomers)
                        self._joining = []  # they run in the batch now, or have ended
                    if self._batch is not None:
                        self._decode()
                except Exception as exc:  # a failed step fails the requests in it, not the server
                    logger.exception("batched generation step failed")
                    error = ProviderError(f"generation failed: {exc}")
                    for job in newcomers + (self._batch.jobs if self._batch is not None else []):
                        job.end("cancelled", error)
                    self._batch = None
                self._joining = []
                self._moved_at = time.monotonic()

    def _held(self) -> bool:
        """Whether a pause keeps the loop from starting its next step (called with the lock held)."""
        return self._pauses > 0 and self._granted == 0

    def _admit(self) -> list[BatchJob]:
        """Waiting jobs that join at this step (called with the lock held)."""
        room = self.limits.max_batch_size - self.running
        budget = self.limits.max_batched_tokens - self.running
        # Kept on the scheduler while it is chosen: should this loop fail, these jobs are ended too.
        chosen: list[BatchJob] = []
        self._joining = chosen
        longest = 0
        while self._waiting and len(chosen) < room:
            job = self._waiting[0]
            if job.cancel.is_set():
                self._waiting.popleft()
                job.end("cancelled")
                continue
            cost = max(longest, len(job.prompt_ids)) * (len(chosen) + 1)
            if chosen and cost > budget:
                break
            if not chosen and cost > budget and self._batch is not None:
                break  # a long prompt waits until the batch drains rather than stalling every row for long
            longest = max(longest, len(job.prompt_ids))
            chosen.append(self._waiting.popleft())
        return chosen

    def _forward(self, input_ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            **self._keep,
        )
        self.steps += 1
        return out.logits[:, -1, :].float()

    def _prefill(self, jobs: list[BatchJob]) -> None:
        import torch
        from transformers.cache_utils import DynamicCache

        width = max(len(job.prompt_ids) for job in jobs)
        ids = torch.full((len(jobs), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for row, job in enumerate(jobs):
            n = len(job.prompt_ids)
            ids[row, width - n :] = torch.tensor(job.prompt_ids, dtype=torch.long)
            mask[row, width - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        # As generate() does for a left-padded batch: count positions from each row's first real token.
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(ids, mask, positions, cache)
        batch = _Batch(jobs, cache, mask, positions[:, -1] + 1, torch.zeros(len(jobs), dtype=torch.long))
        batch.last = self._sample(batch, logits)
        kept = self._advance(batch)
        if not kept:
            return
        if len(kept) < len(batch):
            batch.keep(kept)
        if self._batch is None:
            self._batch = batch
        else:
            self._batch.merge(batch)

    def _decode(self) -> None:
        import torch

        batch = self._batch
        assert batch is not None
        cancelled = [row for row, job in enumerate(batch.jobs) if job.cancel.is_set()]
        if cancelled:
            for row in cancelled:
                batch.jobs[row].end("cancelled")
            rows = [row for row in range(len(batch)) if row not in cancelled]
            if not rows:
                self._batch = None
                return
            batch.keep(rows)
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch), 1))], dim=1)
        logits = self._forward(batch.last[:, None], batch.mask, batch.positions[:, None], batch.cache)
        batch.positions = batch.positions + 1
        batch.last = self._sample(batch, logits)
        kept = self._advance(batch)
        if not kept:
            self._batch = None
        elif len(kept) < len(batch):
            batch.keep(kept)

    def _sample(self, batch: _Batch, logits: Any) -> Any:
        """Each row's next token: greedy rows by argmax, sampling rows by `pick`; constrained rows masked first."""
        for row, job in enumerate(batch.jobs):
            if job.see is not None:
                job.see(logits[row : row + 1])  # before the mask: log-probabilities are the model's own
            if job.constrain is not None:
                job.constrain(logits[row : row + 1])  # a view: masks this row of `logits` in place
        chosen = logits.argmax(dim=-1)
        for row, job in enumerate(batch.jobs):
            if job.pick is not None:
                chosen[row] = job.pick(logits[row : row + 1])
        return chosen

    def _advance(self, batch: _Batch) -> list[int]:
        """Hand each row its new token; end the rows that finished; the rows that go on."""
        kept = []
        for row, (job, token) in enumerate(zip(batch.jobs, batch.last.tolist(), strict=True)):
            job.tokens.append(token)
            try:
                stop = job.on_token(token)
            except Exception as exc:  # a failing consumer ends its own request only
                job.end("cancelled", exc)
                continue
            if token in self.eos:
                job.end("eos")
            elif stop:
                job.end("stop")
            elif len(job.tokens) >= job.max_new_tokens:
                job.end("length")
            else:
                kept.append(row)
        return kept
