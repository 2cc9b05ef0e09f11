"""The local provider: a Hugging Face causal LM from a local folder, on cpu, cuda or mps.

Plain Python, no Django. Generation runs in the caller's thread (`generate`) or in this
provider's worker threads (`stream`), never on the event loop. Per generated token the only
extra work beside `model.generate` is one StoppingCriteria call (cancel flag, stop strings,
the produced-token counter) and, when streaming or stopping on strings, one incremental
decode — so the provider runs at the speed of raw `generate`.

Sampling uses a per-request `torch.Generator` inside a logits processor (and greedy picks
the sampled token), so a seed repeats exactly without locking the global RNG.

With `batching=True` (LLM_BATCHING) one scheduler thread owns the model and concurrent requests
share its forward passes (continuous batching, `batching.py`); the same _Sampler, _Detokenizer
and token counting run per request there, so outputs, stop strings, seeds and cancellation
behave as in the one-by-one path, which stays available (and is used for models the scheduler
cannot drive).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from inference.providers import tools
from inference.providers.base import (
    Completion,
    FinishReason,
    GenerationRequest,
    ModelInfo,
    PromptTooLong,
    Provider,
    ProviderError,
    ProviderUnavailable,
    SamplingParams,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TokenLogprob,
    Usage,
)
from inference.providers.batching import (
    BatchJob,
    BatchLimits,
    BatchScheduler,
    EndReason,
    Progress,
    supports_batching,
)
from inference.providers.constraints import ConstraintBroken, JsonConstraint, ResponseFormat, VocabularyCache
from inference.providers.logprobs import LogprobCollector, TokenText, log_softmax, score_rows, token_namer
from llmsite.devices import DeviceUnavailable
from llmsite.devices import resolve_device as _resolve_device

logger = logging.getLogger(__name__)


def preload_imports() -> None:
    """Import what loading needs, in the calling thread.

    transformers resolves its names lazily and that is not thread-safe: two threads loading
    models at start-up (this provider and the embedding encoder) can see half-imported modules
    ("cannot import name 'AutoModelForCausalLM'"). Servers call this once before their loader threads.
    """
    import torch  # noqa: F401
    from transformers import (  # noqa: F401
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
        LogitsProcessorList,
        StoppingCriteriaList,
    )
    from transformers.generation.streamers import BaseStreamer  # noqa: F401


def resolve_device(device: str) -> str:
    """`auto` → cuda, then mps, then cpu (llmsite.devices); an unknown or absent device raises ProviderUnavailable."""
    try:
        return _resolve_device(device)
    except DeviceUnavailable as exc:
        raise ProviderUnavailable(exc.message) from exc


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        # float32 on CPU (docs/performance.md#float32-vs-bfloat16-on-cpus). Without native bf16
        # (AVX2 only) bf16 slows time-to-first-token ~4x. With it (AMX, AVX512-BF16) bf16 batches
        # faster, but batched greedy answers then drift from unbatched ones after a few dozen
        # tokens (batch-shape rounding), which float32 does not do: LLM_DTYPE=bfloat16 trades that
        # exactness for speed.
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device == "mps" else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ProviderUnavailable(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None


def context_window(max_position_embeddings: int | None, tokenizer: Any) -> int:
    """The model's window in tokens: its config's max_position_embeddings, bounded by the tokenizer's own limit."""
    window = int(max_position_embeddings or 2048)
    tokenizer_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_max, int) and 0 < tokenizer_max < window:
        window = tokenizer_max
    return window


def folder_identity(folder: Path) -> str:
    """A short digest of the config and the weight files' names, sizes and mtimes: changes with the weights."""
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for path in sorted(folder.iterdir()):
        if path.suffix in (".safetensors", ".bin", ".pt"):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class _Control:
    """The per-step StoppingCriteria: counts tokens, and stops on cancel or on a stop string.

    transformers calls it once per generated token, right after the streamer saw that token,
    so a cancel or a stop string takes effect within one token.
    """

    def __init__(self, provider: HFProvider, cancel: threading.Event | None):
        import torch

        self.provider = provider
        self.cancel = cancel
        self.stop_hit = False
        self.produced = 0
        self.first_token_at: float | None = None
        self._no = torch.zeros(1, dtype=torch.bool)
        self._yes = torch.ones(1, dtype=torch.bool)

    def count(self) -> None:
        """One more token produced (the provider's counter too)."""
        if self.produced == 0:
            self.first_token_at = time.perf_counter()
        self.produced += 1
        with self.provider._count_lock:
            self.provider._produced += 1

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        if self.produced == 0:
            self._no = self._no.to(input_ids.device)
            self._yes = self._yes.to(input_ids.device)
        self.count()
        if self.stop_hit or (self.cancel is not None and self.cancel.is_set()):
            return self._yes
        return self._no


class _Sampler:
    """Temperature + top-p sampling with the request's own generator, as a logits processor.

    It returns scores that are -inf except at the sampled token, so greedy decoding picks it.
    """

    def __init__(self, sampling: SamplingParams, device: str):
        import torch

        self.temperature = sampling.temperature
        self.top_p = sampling.top_p
        self.generator = torch.Generator(device=device)
        seed = sampling.seed
        self.generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        chosen = torch.tensor([[self.pick(scores)]], device=scores.device)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, chosen, 0.0)

    def pick(self, scores: Any) -> int:
        """The sampled token id from one row of scores ([1, vocab])."""
        import torch

        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True)
            cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            drop = cumulative > self.top_p
            drop[..., 1:] = drop[..., :-1].clone()  # keep the token that crosses top_p
            drop[..., 0] = False
            logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
        return int(torch.multinomial(logits.softmax(dim=-1), 1, generator=self.generator))


class _See:
    """A logits processor that hands the raw logits to a LogprobCollector and changes nothing; it runs first."""

    def __init__(self, collector: LogprobCollector):
        self.collector = collector

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.collector.see(scores[0])
        return scores


class _Detokenizer:
    """Incremental decoding (prefix/read offsets) with stop strings and hold-back.

    Text that could still become the start of a stop string is held back until it cannot,
    so a stop string never leaks into the output, not even partly.
    """

    def __init__(self, tokenizer: Any, stop: tuple[str, ...], emit: Callable[[str], None] | None, control: _Control):
        self.tokenizer = tokenizer
        self.stop = stop
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.emit = emit
        self.control = control
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0
        self.text = ""  # decoded so far, cut at a stop string
        self.sent = 0  # characters of self.text already emitted
        self.skipped_prompt = False
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def put(self, value: Any) -> None:
        if not self.skipped_prompt:  # generate() hands the prompt to the streamer first
            self.skipped_prompt = True
            return
        self.add(value.reshape(-1).tolist())

    def add(self, ids: list[int]) -> None:
        """New token ids, in order (the prompt excluded)."""
        if self.stopped:
            return
        self.ids.extend(ids)
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return  # an incomplete character or a special token: wait for more
        self.prefix, self.read = self.read, len(self.ids)
        self._add(after[len(before) :], final=False)

    def _add(self, delta: str, *, final: bool) -> None:
        start = max(0, len(self.text) - self.hold)
        self.text += delta
        if self.stop:
            cuts = [i for s in self.stop if (i := self.text.find(s, start)) != -1]
            if cuts:
                self.text = self.text[: min(cuts)]
                self.stopped = self.control.stop_hit = True
                final = True
        upto = len(self.text) if final else max(self.sent, len(self.text) - self.hold)
        if upto > self.sent:
            piece, self.sent = self.text[self.sent : upto], upto
            if self.emit is not None:
                self.emit(piece)

    def end(self) -> None:
        if not self.stopped:
            rest = self._decode(self.ids[self.prefix :])[len(self._decode(self.ids[self.prefix : self.read])) :]
            self._add(rest, final=True)


class HFProvider(Provider):
    """AutoModelForCausalLM + AutoTokenizer from a local folder; never downloads."""

    name = "hf"
    engine = "transformers"

    def __init__(
        self,
        model: str,
        folder: Path | str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        workers: int = 4,
        batching: bool = False,
        limits: BatchLimits | None = None,
    ):
        super().__init__(model)
        self.folder = Path(folder)
        self.requested_device = device
        self.device = ""
        self.dtype_name = dtype
        self.workers = workers
        self.tokenizer: Any = None
        self.hf_model: Any = None
        self._identity = ""
        self._context_window = 0
        self._produced = 0
        self._count_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.batching = batching
        self.limits = limits or BatchLimits()
        self.scheduler: BatchScheduler | None = None
        self.batching_off_reason = "" if batching else "LLM_BATCHING is off"
        self._vocabulary = VocabularyCache()  # built when the first structured-output request comes
        self._namer: TokenText | None = None  # token ids' texts for log-probabilities, decoded once per id

    # --- lifecycle ----------------------------------------------------------------------
    def load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
        from transformers.utils import logging as hf_logging

        if not (self.folder / "config.json").is_file():
            raise ProviderUnavailable(f"model folder {self.folder} has no config.json")
        self.device = resolve_device(self.requested_device)
        dtype = resolve_dtype(self.dtype_name, self.device)
        started = time.perf_counter()
        hf_logging.disable_progress_bar()  # a server log is no place for progress bars
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
            model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ProviderUnavailable(f"cannot load {self.folder}: {exc}") from exc
        self.hf_model = model.to(self.device).eval()
        self._context_window = context_window(getattr(model.config, "max_position_embeddings", None), self.tokenizer)
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        pad = model.generation_config.pad_token_id
        if pad is None:
            pad = eos[0] if isinstance(eos, list) else eos
        # Our own config: greedy by default (sampling goes through _Sampler), nothing inherited
        # from the folder that would change outputs silently.
        self.generation_config = GenerationConfig(
            do_sample=False, eos_token_id=eos, pad_token_id=pad, bos_token_id=model.generation_config.bos_token_id
        )
        model.generation_config = self.generation_config
        self._identity = f"{self.folder.resolve()}@{folder_identity(self.folder)}"
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"hf-{self.model}")
        if self.batching:
            self.batching_off_reason = supports_batching(model)
            if self.batching_off_reason:
                logger.warning("%s: generating one request at a time: %s", self.model, self.batching_off_reason)
            else:
                self.scheduler = BatchScheduler(
                    model,
                    eos_token_ids=self._eos_ids(),
                    pad_token_id=self.generation_config.pad_token_id or 0,  # masked out: any id will do
                    limits=self.limits,
                    name=self.model,
                )
        logger.info(
            "loaded %s from %s on %s (%s, %s) in %.1f s",
            self.model,
            self.folder,
            self.device,
            str(dtype).removeprefix("torch."),
            f"batching up to {self.limits.max_batch_size}" if self.scheduler else "one request at a time",
            time.perf_counter() - started,
        )

    def load_tokenizer(self) -> None:
        """Load only what rendering, counting and `prepare` need: the tokenizer and the context window.

        The web side of a runner process (`inference.runners.client`) uses it, so the prompt is
        rendered and tokenised where the request arrives and the runner only computes.
        """
        from transformers import AutoTokenizer

        config = self.folder / "config.json"
        if not config.is_file():
            raise ProviderUnavailable(f"model folder {self.folder} has no config.json")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        except (OSError, ValueError) as exc:
            raise ProviderUnavailable(f"cannot load the tokenizer of {self.folder}: {exc}") from exc
        max_positions = json.loads(config.read_text()).get("max_position_embeddings")
        self._context_window = context_window(max_positions, self.tokenizer)

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        was_cuda = self.device == "cuda"
        self.hf_model = None
        self.tokenizer = None
        if was_cuda:
            import torch

            torch.cuda.empty_cache()

    # --- tokens -------------------------------------------------------------------------
    @property
    def context_window(self) -> int:
        return self._context_window

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def produced_tokens(self) -> int:
        """Tokens generated by this provider so far, counted as they are produced (all requests)."""
        return self._produced

    def progress(self) -> Progress | None:
        """Whether the engine thread (the scheduler) is alive and moving; None without one (one request at a time)."""
        scheduler = self.scheduler
        return scheduler.progress() if scheduler is not None else None

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(self.model, str(self.folder))]

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    @property
    def templated(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, request: GenerationRequest) -> str:
        """The text the model sees: a prompt is one user turn under the chat template, when there is one."""
        if self.tokenizer is None:
            raise ProviderUnavailable(f"{self.model} is not loaded")
        if request.raw_prompt:
            return request.prompt or ""
        chat = request.messages is not None or tools.calls_possible(request)
        if not self.templated:
            if not chat:
                return request.prompt or ""
            turns = "".join(f"{m['role']}: {m['content']}\n" for m in tools.chat_messages(request, native=False))
            return turns + "assistant:"
        native = tools.template_takes_tools(self.tokenizer.chat_template)
        messages = tools.chat_messages(request, native=native)
        extra = {"tools": tools.template_tools(request)} if native and tools.calls_possible(request) else {}
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **extra)

    def _encode(self, text: str) -> list[int]:
        # A chat template writes the special tokens itself; plain prompts get the tokenizer's own.
        return self.tokenizer(text, add_special_tokens=not self.templated)["input_ids"]

    def prepare(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids; raises PromptTooLong when it leaves no room for one new token."""
        ids = self._encode(self.render(request))
        if len(ids) + 1 > self._context_window:
            raise PromptTooLong(len(ids), self._context_window)
        return ids

    def _eos_ids(self) -> set[int]:
        eos = self.generation_config.eos_token_id
        return set(eos) if isinstance(eos, list) else {eos}

    # --- generation ---------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Completion:
        request, parser = tools.prepare(request)  # tool calls: constrained text, read back into calls
        completion = self._generate(request)
        return parser.completion(completion) if parser is not None else completion

    def _generate(self, request: GenerationRequest) -> Completion:
        if self.scheduler is None:
            return self._run(request, emit=None, cancel=None)
        finished = threading.Event()
        outcome: list[Completion | BaseException] = []

        def done(result: Completion | BaseException) -> None:
            outcome.append(result)
            finished.set()

        self.start(request, done=done)
        finished.wait()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    def start(
        self,
        request: GenerationRequest,
        *,
        done: Callable[[Completion | BaseException], None],
        emit: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        ids: list[int] | None = None,
    ) -> None:
        """Begin generating and return at once: `emit(text)` per delta, then `done(result)` exactly once.

        When the request asks for log-probabilities, `emit(text, logprobs)` gets those of the delta's
        tokens too (a last delta may be text "" carrying the rest).

        Both are called on an engine thread (the scheduler's, or a worker's without batching):
        keep them short. Setting `cancel` ends the generation within one token, with finish
        reason "cancelled". Raises at once what is known before any work (not loaded,
        PromptTooLong, QueueFull). `ids` are the prompt's tokens when the caller has already
        prepared them (`prepare(request)`, with the same tokenizer). `stream` and `generate` are
        built on it, and so is the runner process (`inference.runners`), which writes each delta
        straight to its client.
        """
        if self._executor is None:
            raise ProviderUnavailable(f"{self.model} is not loaded")
        scheduler = self.scheduler
        if scheduler is None:

            def work() -> None:
                try:
                    completion = self._run(request, emit=emit, cancel=cancel)
                except BaseException as exc:  # hand every failure to the consumer
                    done(exc)
                else:
                    done(completion)

            self._executor.submit(work)
            return
        started = time.perf_counter()
        if ids is None:
            ids = self.prepare(request)
        scheduler.submit(self._job(request, ids, started=started, emit=emit, cancel=cancel, done=done))

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Text deltas (and tool call deltas) as they are produced, then a StreamEnd; closing the iterator cancels
        generation."""
        request, parser = tools.prepare(request)
        return tools.parsed(self._stream(request), parser)

    async def _stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        if self._executor is None:
            raise ProviderUnavailable(f"{self.model} is not loaded")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamEvent | BaseException] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: StreamEvent | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody listens any more
                cancel.set()

        def emit(text: str, logprobs: tuple[TokenLogprob, ...] | None = None) -> None:
            put(TextDelta(text, logprobs))

        def done(result: Completion | BaseException) -> None:
            if isinstance(result, Completion):
                result = StreamEnd(result.usage, result.finish_reason, result.text, result.ttft)
            put(result)

        # Tokenising off the event loop; the engine thread then does the rest. No worker thread
        # waits per stream with batching, so LLM_WORKERS does not cap the number of streams.
        await loop.run_in_executor(
            self._executor, functools.partial(self.start, request, done=done, emit=emit, cancel=cancel)
        )
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, StreamEnd):
                    return
        finally:
            cancel.set()  # a consumer that leaves early stops the worker within one token

    def _job(
        self,
        request: GenerationRequest,
        ids: list[int],
        *,
        started: float,
        emit: Callable[[str], None] | None,
        cancel: threading.Event | None,
        done: Callable[[Completion | BaseException], None],
    ) -> BatchJob:
        """`request` as a scheduler job: the same sampler, detokenizer and counting as `_run`."""
        tokenizer = self.tokenizer
        control = _Control(self, cancel)
        sampling = request.sampling
        collector = self._collector_for(request)
        emit = _with_logprobs(emit, collector)
        detok = _Detokenizer(tokenizer, sampling.stop, emit, control) if emit is not None or sampling.stop else None
        pick = self._pick_for(sampling)
        constraint = self._constraint_for(request)

        def on_token(token: int) -> bool:
            if collector is not None:
                collector.add(token)  # before the detokenizer emits the delta this token completes
            if constraint is not None:
                constraint.accept(token)  # raises on a token the mask did not allow: ends this request only
            control.count()
            if detok is None:
                return False
            detok.add([token])
            return control.stop_hit

        def on_end(tokens: list[int], end: EndReason, error: BaseException | None) -> None:
            if error is not None:
                done(error if isinstance(error, ProviderError) else ProviderError(f"generation failed: {error}"))
                return
            if detok is not None:
                detok.end()
                text = detok.text
            else:
                text = tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            reason: FinishReason = {"eos": "stop", "stop": "stop", "length": "length", "cancelled": "cancelled"}[end]
            ttft = control.first_token_at - started if control.first_token_at is not None else None
            completion = Completion(text, Usage(len(ids), len(tokens)), reason, ttft)
            if collector is None:
                done(completion)
            elif self.scores_after_generation and self._executor is not None:  # off the engine thread
                self._executor.submit(self._end_with_logprobs, completion, collector, ids, list(tokens), emit, done)
            else:
                self._end_with_logprobs(completion, collector, ids, tokens, emit, done)

        return BatchJob(
            prompt_ids=ids,
            max_new_tokens=min(request.sampling.max_new_tokens, self._context_window - len(ids)),
            on_token=on_token,
            on_end=on_end,
            pick=pick,
            constrain=constraint.mask if constraint is not None else None,
            see=collector.see if collector is not None else None,
            sampling=sampling,
            response_format=request.response_format,
            cancel=cancel if cancel is not None else threading.Event(),
        )

    # --- log-probabilities ----------------------------------------------------------------
    # transformers hands each step's logits to the collector as it generates; an engine that cannot
    # (OpenVINO) sets this and fills them in after generation with one scoring pass (`_fill_logprobs`).
    scores_after_generation = False

    def _token_text(self) -> TokenText:
        if self._namer is None:
            self._namer = token_namer(self.tokenizer)
        return self._namer

    def _collector_for(self, request: GenerationRequest) -> LogprobCollector | None:
        if request.logprobs is None:
            return None
        # A text completion (raw prompt) reports the end-of-sequence token it stopped at, as OpenAI's and vLLM's
        # /v1/completions do: evaluation harnesses score `echo` with `max_tokens: 1` and drop the last entry as
        # the generated one. A chat answer reports none, as OpenAI's chat completions.
        skip = () if request.raw_prompt else self._eos_ids()
        return LogprobCollector(request.logprobs, self._token_text(), skip=skip)

    def _end_with_logprobs(
        self,
        completion: Completion,
        collector: LogprobCollector,
        ids: list[int],
        tokens: list[int],
        emit: Callable[..., None] | None,
        done: Callable[[Completion | BaseException], None],
    ) -> None:
        """`done` with the completion's log-probabilities; the ones no delta carried yet go out in a last one."""
        try:
            self._fill_logprobs(collector, ids, tokens)
        except Exception as exc:  # a failed scoring pass fails this request only
            done(ProviderError(f"computing log-probabilities failed: {exc}"))
            return
        if emit is not None and collector.pending:
            emit("")  # the wrapped emit hands over the entries no delta carried yet
        done(dataclasses.replace(completion, logprobs=tuple(collector.entries)))

    def _fill_logprobs(self, collector: LogprobCollector, ids: list[int], tokens: list[int]) -> None:
        """Give `collector` the entries the engine did not (transformers gave them all while generating)."""
        if self.scores_after_generation and tokens:
            rows = self._logprob_rows(ids + tokens)
            for offset, token in enumerate(tokens):
                collector.see(rows[len(ids) + offset - 1])
                collector.add(token)

    def _logprob_rows(self, ids: list[int]) -> Any:
        """One forward pass over `ids`: the log-softmax at every position ([len(ids), vocab], float32)."""
        import torch

        if self.hf_model is None:
            raise ProviderUnavailable(f"{self.model} is not loaded")
        input_ids = torch.tensor([ids], device=self.device)
        with torch.inference_mode():
            logits = self.hf_model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits
        return log_softmax(logits[0]).cpu()

    def score(self, request: GenerationRequest, ids: list[int] | None = None) -> tuple[TokenLogprob | None, ...]:
        """The prompt's own tokens' log-probabilities (the first is None), from one forward pass."""
        if ids is None:
            ids = self.prepare(request)
        if not ids:
            return ()
        rows = self._logprob_rows(ids)
        return tuple(score_rows(rows, ids, request.logprobs or 0, self._token_text()))

    def check_response_format(self, response_format: ResponseFormat) -> None:
        """Every response format `ResponseFormat.parse` accepts is enforced here (it asked the same library)."""

    def check_features(self, request: GenerationRequest) -> None:
        """Local models call tools (`inference/providers/tools.py`) and report log-probabilities (both engines);
        the rest as the base checks it."""
        tools.check(request, self.check_response_format)
        super().check_features(replace(request, tools=(), logprobs=None))

    def _constraint_for(self, request: GenerationRequest) -> JsonConstraint | None:
        """The request's structured-output constraint over this model's logits; None for free text."""
        if request.response_format is None:
            return None
        vocabulary = self._vocabulary.get(
            self.tokenizer, eos_token_ids=self._eos_ids(), size=int(self.hf_model.config.vocab_size)
        )
        return JsonConstraint(vocabulary, request.response_format)

    def _pick_for(self, sampling: SamplingParams) -> Callable[[Any], int] | None:
        """How a scheduler job picks its next token from logits: None is greedy."""
        return _Sampler(sampling, self.device).pick if not sampling.greedy else None

    def _run(
        self, request: GenerationRequest, *, emit: Callable[[str], None] | None, cancel: threading.Event | None
    ) -> Completion:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        model, tokenizer = self.hf_model, self.tokenizer
        if model is None:
            raise ProviderUnavailable(f"{self.model} is not loaded")
        started = time.perf_counter()
        ids = self.prepare(request)
        max_new = min(request.sampling.max_new_tokens, self._context_window - len(ids))
        control = _Control(self, cancel)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "stopping_criteria": StoppingCriteriaList([control]),
        }
        processors: list[Any] = []
        collector = self._collector_for(request)
        if collector is not None:
            processors.append(_See(collector))  # first: the raw logits, before any mask or sampling
        emit = _with_logprobs(emit, collector)
        constraint = self._constraint_for(request)
        if constraint is not None:
            processors.append(constraint.processor())  # before sampling: the sampler only sees allowed tokens
        if not request.sampling.greedy:
            processors.append(_Sampler(request.sampling, self.device))
        if processors:
            kwargs["logits_processor"] = LogitsProcessorList(processors)
        detok: _Detokenizer | None = None
        if emit is not None or request.sampling.stop or collector is not None:
            detok = _Detokenizer(tokenizer, request.sampling.stop, emit, control)

            class _Streamer(BaseStreamer):
                def put(self, value: Any) -> None:
                    if collector is not None and detok.skipped_prompt:  # the first put is the prompt
                        for token in value.reshape(-1).tolist():
                            collector.add(token)
                    detok.put(value)

                end = staticmethod(detok.end)

            kwargs["streamer"] = _Streamer()
        input_ids = torch.tensor([ids], device=self.device)
        try:
            with torch.inference_mode():
                output = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
        except (RuntimeError, ValueError, ConstraintBroken) as exc:
            raise ProviderError(f"generation failed: {exc}") from exc
        new = output[0, len(ids) :].tolist()
        if detok is not None:
            text = detok.text
        else:
            text = tokenizer.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        eos_ids = self._eos_ids()
        reason: FinishReason
        if cancel is not None and cancel.is_set() and not control.stop_hit:
            reason = "cancelled"
        elif control.stop_hit or (new and new[-1] in eos_ids):
            reason = "stop"
        else:
            reason = "length"
        ttft = control.first_token_at - started if control.first_token_at is not None else None
        if collector is None:
            return Completion(text, Usage(len(ids), len(new)), reason, ttft)
        if emit is not None and collector.pending:
            emit("")  # the wrapped emit hands over the entries no delta carried yet
        return Completion(text, Usage(len(ids), len(new)), reason, ttft, logprobs=tuple(collector.entries))


def _with_logprobs(emit: Callable[..., None] | None, collector: LogprobCollector | None) -> Callable[..., None] | None:
    """`emit(text)` as the detokenizer calls it; with a collector, each delta also carries its tokens' entries."""
    if emit is None or collector is None:
        return emit
    target = emit
    return lambda text: target(text, collector.take())
