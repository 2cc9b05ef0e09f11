"""The OpenVINO engine for local models: OpenVINO GenAI's continuous batching, exact to float32 by default.

Plain Python, no Django. The weights are an OpenVINO IR exported once from the model's
transformers folder (`<folder>/openvino/<precision>/`, written by `inference.export`); the
tokenizer and chat template stay the transformers tokenizer's, so this engine sees exactly the
token ids, renders (cache keys), stop strings and token counts `HFProvider` sees: only the
forward passes, the KV cache and sampling move to OpenVINO. Everything else — streaming,
cancellation within one token, the queue limit, usage — is `HFProvider`'s code path with its
scheduler (`BatchScheduler`) swapped for `OpenVINOScheduler`, which drives a
`ContinuousBatchingPipeline` from one thread.

Exactness: with precision fp32 the pipeline computes in f32 with an f32 KV cache and no dynamic
quantisation (`EXACT_PROPERTIES`); greedy answers then equal transformers float32 token for
token, alone and batched. int8/int4 are compressed weights: faster, not exact.

Log-probabilities: the pipeline reports at most the chosen token's, and none of the alternatives,
so they come from a scoring pass instead (`IRScorer`): the exported IR compiled a second time as a
plain stateful model, one forward pass over prompt + generated tokens when a generation ends (off
the engine thread), or over the prompt alone for `echo`. It is compiled on the first such request
(about 2 s and one more copy of the weights in memory for SmolLM2-135M fp32); streamed deltas on
this engine therefore carry no log-probabilities, and a last delta carries them all.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from inference.providers.base import Completion, GenerationRequest, ModelInfo, ProviderError, ProviderUnavailable
from inference.providers.batching import BatchJob, BatchLimits, Progress
from inference.providers.constraints import ResponseFormat, openvino_structured_output, openvino_unsupported
from inference.providers.hf import HFProvider, folder_identity

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "int4")
# OpenVINO computes in bf16 on CPUs that have it unless told otherwise, and quantises activations
# dynamically: both make greedy answers drift from float32. These keep it exact.
EXACT_PROPERTIES = {
    "INFERENCE_PRECISION_HINT": "f32",
    "KV_CACHE_PRECISION": "f32",
    "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0",
}
MARKER = ".exported"  # written last by the exporter: a folder without it is half-written


def openvino_folder(folder: Path, precision: str) -> Path:
    """Where the OpenVINO form of the transformers model in `folder` lives."""
    return folder / "openvino" / precision


def is_exported(folder: Path, precision: str) -> bool:
    return (openvino_folder(folder, precision) / MARKER).is_file()


@functools.cache
def import_problem() -> str:
    """'' when OpenVINO GenAI imports here; else why not (the engine then falls back to transformers)."""
    try:
        import openvino_genai  # noqa: F401
    except Exception as exc:  # an ImportError, or a wheel that does not load on this CPU/OS
        return f"openvino-genai does not import: {exc}"
    return ""


class OpenVINOScheduler:
    """One thread owns a ContinuousBatchingPipeline: it admits submitted jobs, steps, and reports tokens.

    The same interface as `BatchScheduler` (`submit`, `close`, `running`), the same job
    callbacks on this thread, the same limits: at most `max_batch_size` running rows and
    `max_queue` waiting ones (then `QueueFull`). Every pipeline call happens on this thread,
    so nothing relies on the pipeline being thread-safe. A job's `sampling` says how to sample
    (OpenVINO samples itself); its `pick` is ignored.
    """

    def __init__(self, pipeline: Any, *, eos_token_ids: set[int], limits: BatchLimits, name: str = "openvino"):
        self.pipeline = pipeline
        self.eos = frozenset(eos_token_ids)
        self.limits = limits
        self.name = name
        self.steps = 0
        self.failure = ""  # why the loop ended, when the pipeline failed
        self._moved_at = time.monotonic()  # the last completed step, or when work came to an idle loop
        self._ids = itertools.count()
        self._waiting: deque[BatchJob] = deque()
        self._active: dict[int, tuple[BatchJob, Any]] = {}
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=f"openvino-{name}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> int:
        return len(self._active)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, job: BatchJob) -> None:
        """Queue `job`; raises QueueFull when `max_queue` jobs already wait, ProviderUnavailable once closed."""
        with self._wake:
            if self._closing:
                reason = f"the engine thread of {self.name} stopped: {self.failure}" if self.failure else ""
                raise ProviderUnavailable(reason or "the local model is shutting down", permanent=False)
            self.limits.check_room(waiting=len(self._waiting), running=len(self._active))
            if not self._waiting and not self._active:
                self._moved_at = time.monotonic()  # an idle loop's stall clock starts with its work
            self._waiting.append(job)
            self._wake.notify()

    def progress(self) -> Progress:
        """Whether the loop's thread is alive and moving (readiness asks, from any thread)."""
        return Progress.measure(
            thread=self._thread,
            moved_at=self._moved_at,
            running=len(self._active),
            waiting=len(self._waiting),
            steps=self.steps,
            failure=self.failure,
        )

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the current step; waiting and running jobs end with ProviderUnavailable."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # --- the loop: admit → step → report -------------------------------------------------
    def _loop(self) -> None:
        try:
            while self._admit():
                self.pipeline.step()
                self.steps += 1
                self._report()
                self._moved_at = time.monotonic()
        except Exception as exc:  # the pipeline failed: every job learns it, new ones are refused
            logger.exception("the OpenVINO pipeline failed")
            with self._wake:
                self.failure = f"{type(exc).__name__}: {exc}"
                self._closing = True
            self._end_all(ProviderUnavailable(f"the local model failed: {exc}", permanent=False))
            return
        cancelled = bool(self._active)
        self._end_all(ProviderUnavailable("the local model is shutting down", permanent=False))
        if cancelled:
            # One more step frees the cancelled requests' KV cache blocks: the pipeline reports blocks
            # still held when it is destroyed as leaked.
            try:
                self.pipeline.step()
            except Exception:  # closing anyway; the log says so
                logger.exception("the OpenVINO pipeline failed while closing")

    def _admit(self) -> bool:
        """Add waiting jobs while there is room; False when closing. Sleeps while there is nothing to do."""
        with self._wake:
            while not self._closing and not self._waiting and not self._active:
                self._wake.wait()
            if self._closing:
                return False
            joining = []
            while self._waiting and len(self._active) + len(joining) < self.limits.max_batch_size:
                joining.append(self._waiting.popleft())
        for job in joining:
            if job.cancel.is_set():
                job.end("cancelled")
                continue
            unsupported = openvino_unsupported(job.response_format) if job.response_format is not None else []
            if unsupported:  # the services refuse these first; a schema that got past them must not fail the pipeline
                job.end("cancelled", ProviderError(f"cannot enforce {', '.join(unsupported)}", permanent=True))
                continue
            request_id = next(self._ids)
            try:
                handle = self.pipeline.add_request(request_id, _ids_tensor(job.prompt_ids), self._config(job))
            except Exception as exc:  # a request the pipeline refuses ends alone
                job.end("cancelled", ProviderUnavailable(f"the local model refused the request: {exc}"))
                continue
            self._active[request_id] = (job, handle)
        return True

    def _config(self, job: BatchJob) -> Any:
        import openvino_genai

        config = openvino_genai.GenerationConfig()
        config.max_new_tokens = job.max_new_tokens
        config.stop_token_ids = set(self.eos)
        sampling = job.sampling
        if sampling is None or sampling.greedy:
            config.do_sample = False
        else:
            config.do_sample = True
            config.temperature = sampling.temperature
            config.top_p = sampling.top_p
            # Unseeded sampling must differ from call to call; a seed repeats exactly.
            config.rng_seed = sampling.seed if sampling.seed is not None else int.from_bytes(os.urandom(4), "little")
        if job.response_format is not None:
            # OpenVINO GenAI constrains its own sampling (its grammar backend masks each step's logits).
            config.structured_output_config = openvino_structured_output(job.response_format)
        return config

    def _report(self) -> None:
        """Hand each running job its new tokens, in order; end the ones that finished, stopped or were cancelled."""
        for request_id, (job, handle) in list(self._active.items()):
            ended = "cancelled" if job.cancel.is_set() else None
            while ended is None and handle.can_read():  # read() only when something is there: an empty one blocks
                for output in handle.read().values():
                    ended = self._deliver(job, output)
                    if ended is not None:
                        break
            if ended is None:
                continue
            if ended in ("cancelled", "stop"):
                handle.cancel()  # frees its KV cache blocks at the next step
            if ended != "failed":
                job.end(ended)
            del self._active[request_id]

    def _deliver(self, job: BatchJob, output: Any) -> str | None:
        """Hand `job` one output's tokens in order; how it ended ("stop", "eos", "length", "failed"), or None."""
        import openvino_genai

        reasons = openvino_genai.GenerationFinishReason
        for token in output.generated_ids:
            job.tokens.append(token)
            try:
                stop = job.on_token(token)
            except Exception as exc:  # a failing consumer ends its own request only
                job.end("cancelled", exc)
                return "failed"
            if stop and token not in self.eos:
                return "stop"
        if output.finish_reason == reasons.NONE:
            return None
        return "length" if output.finish_reason == reasons.LENGTH else "eos"

    def _end_all(self, error: BaseException) -> None:
        with self._wake:
            waiting, self._waiting = list(self._waiting), deque()
        for _job, handle in self._active.values():
            handle.cancel()
        for job in waiting + [job for job, _handle in self._active.values()]:
            job.end("cancelled", error)
        self._active.clear()


def _ids_tensor(ids: list[int]) -> Any:
    import numpy as np
    import openvino

    return openvino.Tensor(np.array([ids], dtype=np.int64))


class IRScorer:
    """The exported IR as a plain stateful model (inputs input_ids, attention_mask, position_ids, beam_idx),
    compiled on first use: the log-softmax at every position of a sequence, in one forward pass."""

    def __init__(self, folder: Path, properties: dict[str, str]):
        self.folder = folder
        self.properties = properties
        self._compiled: Any = None
        self._lock = threading.Lock()

    def rows(self, ids: list[int]) -> Any:
        import numpy as np
        import torch

        with self._lock:
            if self._compiled is None:
                import openvino

                self._compiled = openvino.Core().compile_model(
                    str(self.folder / "openvino_model.xml"), "CPU", self.properties
                )
            compiled = self._compiled
        request = compiled.create_infer_request()  # its own state: concurrent passes do not share a KV cache
        tokens = np.array([ids], dtype=np.int64)
        outputs = request.infer(
            {
                "input_ids": tokens,
                "attention_mask": np.ones_like(tokens),
                "position_ids": np.arange(len(ids), dtype=np.int64)[None],
                "beam_idx": np.zeros(1, dtype=np.int32),
            }
        )
        return torch.from_numpy(np.array(outputs[compiled.outputs[0]][0])).log_softmax(dim=-1)


class OpenVINOProvider(HFProvider):
    """A local model served by OpenVINO GenAI on the CPU; see the module docstring.

    `folder` is the transformers folder (tokenizer, config); the IR is read from
    `openvino_folder(folder, precision)`. `kv_cache_gb` bounds the KV cache (OpenVINO allocates
    it in blocks up to that size).
    """

    engine = "openvino"
    scores_after_generation = True  # the pipeline exposes no logits: log-probabilities come from `IRScorer`

    def __init__(
        self,
        model: str,
        folder: Path | str,
        *,
        precision: str = "fp32",
        workers: int = 4,
        limits: BatchLimits | None = None,
        kv_cache_gb: float = 1.0,
    ):
        super().__init__(model, folder, device="cpu", workers=workers, batching=True, limits=limits)
        if precision not in PRECISIONS:
            raise ProviderUnavailable(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self.kv_cache_gb = kv_cache_gb
        self.ov_folder = openvino_folder(self.folder, precision)
        self.pipeline: Any = None
        self._twin: HFProvider | None = None
        self._twin_lock = threading.Lock()
        self.scorer: IRScorer | None = None

    def load(self) -> None:
        problem = import_problem()
        if problem:
            raise ProviderUnavailable(problem)
        import openvino_genai
        from transformers import GenerationConfig

        if not (self.folder / "config.json").is_file():
            raise ProviderUnavailable(f"model folder {self.folder} has no config.json")
        if not is_exported(self.folder, self.precision):
            raise ProviderUnavailable(
                f"{self.model} has no OpenVINO {self.precision} export at {self.ov_folder}; "
                f"run manage.py prepare_models (or manage.py export_openvino {self.model})"
            )
        started = time.perf_counter()
        self.device = "cpu"
        self.load_tokenizer()
        try:
            self.generation_config = GenerationConfig.from_pretrained(self.folder)
        except (OSError, ValueError) as exc:
            raise ProviderUnavailable(f"cannot load the generation config of {self.folder}: {exc}") from exc
        if self.generation_config.eos_token_id is None:
            self.generation_config.eos_token_id = self.tokenizer.eos_token_id
        scheduler_config = openvino_genai.SchedulerConfig()
        scheduler_config.cache_size = max(1, round(self.kv_cache_gb))
        scheduler_config.max_num_seqs = self.limits.max_batch_size
        scheduler_config.max_num_batched_tokens = self.limits.max_batched_tokens
        scheduler_config.dynamic_split_fuse = True
        scheduler_config.enable_prefix_caching = False
        # Unpinned: the web threads of this process share the two cores with OpenVINO's (one stream's
        # time to first token over HTTP went from 540 to 265 ms here with pinning off).
        properties = {**(EXACT_PROPERTIES if self.precision == "fp32" else {}), "ENABLE_CPU_PINNING": "NO"}
        self.scorer = IRScorer(self.ov_folder, properties)
        try:
            self.pipeline = openvino_genai.ContinuousBatchingPipeline(
                str(self.ov_folder), scheduler_config, "CPU", properties
            )
        except Exception as exc:  # OpenVINO raises RuntimeError for a broken or foreign IR
            raise ProviderUnavailable(f"OpenVINO cannot load {self.ov_folder}: {exc}") from exc
        self._identity = f"openvino-{self.precision}:{self.folder.resolve()}@{folder_identity(self.folder)}"
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"ov-{self.model}")
        self.scheduler = OpenVINOScheduler(  # type: ignore[assignment]  (the same interface as BatchScheduler)
            self.pipeline, eos_token_ids=self._eos_ids(), limits=self.limits, name=self.model
        )
        self.batching_off_reason = ""
        logger.info(
            "loaded %s on OpenVINO (%s, up to %d rows, KV cache %s GB) in %.1f s",
            self.model,
            self.precision,
            self.limits.max_batch_size,
            scheduler_config.cache_size,
            time.perf_counter() - started,
        )

    def close(self) -> None:
        super().close()
        self.pipeline = None
        with self._twin_lock:
            twin, self._twin = self._twin, None
        if twin is not None:
            twin.close()
        self.scorer = None

    def _logprob_rows(self, ids: list[int]) -> Any:
        if self.scorer is None:
            raise ProviderUnavailable(f"{self.model} is not loaded")
        return self.scorer.rows(ids)

    def check_response_format(self, response_format: ResponseFormat) -> None:
        """Every format `ResponseFormat.parse` accepts: what the pipeline cannot enforce, the transformers twin does."""

    # --- the transformers twin ----------------------------------------------------------
    # OpenVINO's structured output ignores some schema keywords (number bounds, multipleOf) and fails
    # on others (minProperties). A request that needs one is answered by the same weights on
    # transformers, constrained by llguidance row by row: exact to this engine at fp32, loaded on
    # the first such request (its own batch, its own memory: about the model's float32 size).
    def needs_transformers(self, request: GenerationRequest) -> str:
        """Why `request` must be answered by the transformers twin ('' when the pipeline serves it)."""
        if request.response_format is not None:
            unsupported = openvino_unsupported(request.response_format)
            if unsupported:
                return f"OpenVINO cannot enforce {', '.join(unsupported)}"
        return ""

    def transformers_twin(self) -> HFProvider:
        """The same model on transformers (batched, float32), loaded on first use."""
        with self._twin_lock:
            if self._twin is None:
                if self.pipeline is None:
                    raise ProviderUnavailable(f"{self.model} is not loaded")
                twin = HFProvider(
                    self.model, self.folder, device="cpu", dtype="float32", workers=self.workers, batching=True,
                    limits=self.limits,
                )  # fmt: skip
                twin.load()
                logger.info("%s: the transformers twin serves what OpenVINO cannot enforce", self.model)
                self._twin = twin
            return self._twin

    def start(
        self,
        request: GenerationRequest,
        *,
        done: Callable[[Completion | BaseException], None],
        emit: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        ids: list[int] | None = None,
    ) -> None:
        if self.needs_transformers(request):
            self.transformers_twin().start(request, done=done, emit=emit, cancel=cancel, ids=ids)
            return
        super().start(request, done=done, emit=emit, cancel=cancel, ids=ids)

    def _constraint_for(self, request: GenerationRequest) -> None:
        """None: the pipeline enforces the response format itself (`OpenVINOScheduler._config`)."""
        return None

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(self.model, f"{self.folder} (OpenVINO {self.precision})")]

    def _pick_for(self, sampling: Any) -> None:
        return None  # OpenVINO samples itself, from the job's `sampling`
