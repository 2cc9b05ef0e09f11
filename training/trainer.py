"""Causal-LM fine-tuning of a local Hugging Face model folder. Plain Python: no Django.

    result = train(TrainingConfig(base_folder=..., output_folder=...), examples,
                   on_event=print, should_stop=cancel_event.is_set)

- Examples are chat conversations (the loss counts only the assistant's tokens; the rest of
  the conversation is context) or plain text (the loss counts every token; long texts are cut
  into windows of `max_length` tokens).
- The held-out split is drawn per example with a seeded shuffle. It is evaluated before
  training and at the end of every epoch; the last epoch's figure is the "after" figure.
- AdamW (no decay on biases and norms), linear warm-up then cosine decay, gradient
  accumulation with the loss averaged over all target tokens of the optimizer step (not over
  micro-batches), gradient clipping at 1.0.
- Training stops after `epochs` passes or `max_steps` optimizer steps, whichever comes first.
- `should_stop()` is checked before every micro-batch and eval batch; True raises
  TrainingCancelled, and nothing is saved.
- Progress goes to `on_event` as the dataclasses below, from the training thread.
- The checkpoint (weights, tokenizer, config, a manifest) is written into a hidden folder
  beside `output_folder` (`.<name>.partial-<random>`), fsynced, and renamed into place, so a
  half-written folder is never mistaken for a model. A process killed meanwhile leaves that
  hidden folder: `partial_checkpoints()` finds it for whoever cleans up after the dead run.
  A disk that cannot take the checkpoint is a TrainingError naming it, with nothing left behind.

Speed: for the architectures in SELECTIVE_HEAD_TYPES the output projection runs only on the
positions that have a target token; on chat data most positions are prompt, and the 49k-word
projection of every position is the single most expensive layer of a small model.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from llmsite.devices import DeviceUnavailable
from llmsite.devices import resolve_device as _resolve_device
from llmsite.durable import fsync_path

IGNORE = -100
T = TypeVar("T")
MANIFEST = "llmsite-training.json"
PARTIAL_PREFIX = ".{name}.partial-"  # + mkdtemp's random letters: a checkpoint being written
# Models whose logits are exactly `lm_head(base_model(...).last_hidden_state)` (no soft-capping
# or logit scaling), so computing the head on selected positions gives the same loss.
SELECTIVE_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gpt2"})


class TrainingError(Exception):
    """The run cannot go on: bad data, an unusable model folder, nothing to train on."""


class TrainingCancelled(Exception):
    """`should_stop()` returned True; nothing was saved."""

    def __init__(self, step: int):
        super().__init__(f"cancelled after {step} steps")
        self.step = step


@dataclass(frozen=True)
class Example:
    """One training example: a chat conversation or a plain text. `source` names it in errors ("file.jsonl:12")."""

    kind: Literal["chat", "text"]
    messages: tuple[tuple[str, str], ...] = ()  # (role, content) pairs
    text: str = ""
    source: str = ""


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a run needs; bounds are the caller's business (the service validates them)."""

    base_folder: Path
    output_folder: Path
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum_steps: int = 1
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_length: int = 512
    eval_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # torch.set_num_threads is process-wide: only set it in a process of its own
    manifest: dict[str, Any] = field(default_factory=dict)  # extra facts written into the checkpoint's manifest


# --- progress events ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    train_examples: int
    eval_examples: int
    train_sequences: int
    eval_sequences: int
    skipped: int  # examples with no target token left after truncation
    steps_per_epoch: int
    total_steps: int
    device: str


@dataclass(frozen=True)
class Evaluated:
    stage: Literal["before", "epoch", "after"]
    epoch: int
    loss: float
    perplexity: float  # nan where it means nothing (a DPO loss)
    extra: dict[str, float] = field(default_factory=dict)  # DPO: preference_accuracy, reward_margin, ...


@dataclass(frozen=True)
class StepDone:
    step: int
    total_steps: int
    epoch: int
    loss: float
    learning_rate: float
    tokens: int  # tokens processed so far (padding excluded)
    elapsed: float  # seconds of training so far (evaluation excluded)


@dataclass(frozen=True)
class EpochDone:
    epoch: int
    step: int
    train_loss: float
    eval_loss: float | None
    learning_rate: float
    tokens_per_second: float
    elapsed: float  # seconds since training began (evaluation included)
    extra: dict[str, float] = field(default_factory=dict)  # DPO: preference_accuracy, reward_margin, ...


@dataclass(frozen=True)
class Saved:
    folder: Path


Event = Prepared | Evaluated | StepDone | EpochDone | Saved


@dataclass(frozen=True)
class TrainingResult:
    steps: int
    epochs: int
    train_loss: float
    eval_loss_before: float | None
    eval_loss_after: float | None
    perplexity_before: float | None
    perplexity_after: float | None
    tokens: int
    train_seconds: float
    seconds: float
    tokens_per_second: float
    steps_per_second: float
    train_examples: int
    eval_examples: int
    device: str
    output_folder: Path
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific figures, flattened into metrics()

    def metrics(self) -> dict[str, Any]:
        """JSON-ready figures (the output folder as a string)."""
        data = asdict(self)
        data["output_folder"] = str(self.output_folder)
        extra = data.pop("extra")
        return {**data, **extra}


# --- encoding -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    labels: list[int]  # aligned with ids; IGNORE where no loss

    @property
    def targets(self) -> int:
        return sum(1 for label in self.labels[1:] if label != IGNORE)


def _templated(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _render(tokenizer: Any, messages: Sequence[tuple[str, str]], *, generation_prompt: bool = False) -> str:
    """The conversation as the served model sees it (the same rendering as the HF provider)."""
    if _templated(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": role, "content": content} for role, content in messages],
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )
    text = "".join(f"{role}: {content}\n" for role, content in messages)
    return text + ("assistant:" if generation_prompt else "")


def encode_chat(tokenizer: Any, example: Example, max_length: int) -> Encoded | None:
    """Token ids and labels of a conversation: labels only on the assistant turns (and their end token).

    Returns None when truncation leaves no assistant token. The assistant spans are found as
    character ranges: the conversation up to each assistant turn rendered with the generation
    prompt must be a prefix of the whole rendering (true of ChatML-style templates).
    """
    messages = example.messages
    full = _render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for index, (role, _) in enumerate(messages):
        if role != "assistant":
            continue
        prefix = _render(tokenizer, messages[:index], generation_prompt=True)
        upto = _render(tokenizer, messages[: index + 1])
        if not (full.startswith(prefix) and full.startswith(upto) and len(prefix) <= len(upto)):
            raise TrainingError(
                f"{example.source}: the tokenizer's chat template does not render conversations "
                "turn by turn, so the assistant's tokens cannot be located"
            )
        spans.append((len(prefix), len(upto)))
    encoded = tokenizer(full, add_special_tokens=not _templated(tokenizer), return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    labels = [IGNORE] * len(ids)
    for position, (start, _end) in enumerate(encoded["offset_mapping"]):
        if any(lo <= start < hi for lo, hi in spans):
            labels[position] = ids[position]
    if not _templated(tokenizer) and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)  # teach the model to stop after its turn
        labels.append(tokenizer.eos_token_id)
    sequence = Encoded(ids[:max_length], labels[:max_length])
    return sequence if sequence.targets else None


def encode_text(tokenizer: Any, example: Example, max_length: int) -> list[Encoded]:
    """A plain text as windows of at most `max_length` tokens, every token a target."""
    ids = list(tokenizer(example.text, add_special_tokens=True)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    windows = [ids[i : i + max_length] for i in range(0, len(ids), max_length)]
    return [Encoded(w, list(w)) for w in windows if len(w) > 1]


def encode(tokenizer: Any, example: Example, max_length: int) -> list[Encoded]:
    if example.kind == "chat":
        sequence = encode_chat(tokenizer, example, max_length)
        return [sequence] if sequence is not None else []
    return encode_text(tokenizer, example, max_length)


def split(examples: Sequence[T], eval_fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, eval): a seeded shuffle, then the first round(n * eval_fraction) examples (at least 1) held out."""
    order = list(examples)
    random.Random(seed).shuffle(order)  # noqa: S311 - reproducible data order, not security
    if eval_fraction <= 0 or len(order) < 2:
        return order, []
    held = min(len(order) - 1, max(1, round(len(order) * eval_fraction)))
    return order[held:], order[:held]


def resolve_device(device: str) -> str:
    """The concrete device for `device` (llmsite.devices), except that `auto` never picks mps.

    Raises TrainingError for an unknown device or one this machine lacks.
    """
    try:
        # mps only when asked: its training kernels lag.
        return _resolve_device(device, auto_picks_mps=False)
    except DeviceUnavailable as exc:
        raise TrainingError(exc.message) from exc


# --- the trainer --------------------------------------------------------------------------------
@dataclass
class _Batch:
    input_ids: Any
    attention_mask: Any
    labels: Any
    targets: int
    tokens: int


class Trainer:
    """One fine-tuning run; `run()` may be called once."""

    def __init__(
        self,
        config: TrainingConfig,
        *,
        on_event: Callable[[Event], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.config = config
        self.on_event = on_event or (lambda event: None)
        self.should_stop = should_stop or (lambda: False)
        self.model: Any = None
        self.tokenizer: Any = None
        self.device = ""
        self._autocast_dtype: Any = None
        self._selective = False
        self._step = 0

    # --- setup ----------------------------------------------------------------------------------
    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        folder = self.config.base_folder
        if not (folder / "config.json").is_file():
            raise TrainingError(f"base model folder {folder} has no config.json")
        self.device = resolve_device(self.config.device)
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise TrainingError(f"cannot load {folder}: {exc}") from exc
        if not getattr(self.tokenizer, "is_fast", False):
            raise TrainingError(f"{folder} has no fast tokenizer (tokenizer.json); it is needed to locate tokens")
        self.model = model.to(self.device)
        self.model.config.use_cache = False  # no KV cache while training; saved back on save
        if self.device == "cuda" and torch.cuda.is_bf16_supported():
            self._autocast_dtype = torch.bfloat16
        self._selective = (
            self.model.config.model_type in SELECTIVE_HEAD_TYPES
            and self.model.get_output_embeddings() is not None
            and self.model.base_model is not self.model
        )

    def _encode_all(self, examples: Sequence[Example]) -> tuple[list[Encoded], int]:
        sequences: list[Encoded] = []
        skipped = 0
        for example in examples:
            encoded = encode(self.tokenizer, example, self.config.max_length)
            skipped += not encoded
            sequences.extend(encoded)
        return sequences, skipped

    def _collate(self, sequences: Sequence[Encoded]) -> _Batch:
        import torch

        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        width = max(len(s.ids) for s in sequences)
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        labels = torch.full((len(sequences), width), IGNORE, dtype=torch.long)
        for row, s in enumerate(sequences):
            ids[row, : len(s.ids)] = torch.tensor(s.ids)
            mask[row, : len(s.ids)] = 1
            labels[row, : len(s.labels)] = torch.tensor(s.labels)
        return _Batch(
            ids.to(self.device),
            mask.to(self.device),
            labels.to(self.device),
            sum(s.targets for s in sequences),
            sum(len(s.ids) for s in sequences),
        )

    def _batches(self, sequences: list[Encoded], rng: random.Random) -> list[_Batch]:
        """Shuffled, then sorted by length within groups of 16 batches: less padding, still random."""
        size = self.config.batch_size
        order = list(range(len(sequences)))
        rng.shuffle(order)
        group = size * 16
        batches: list[list[int]] = []
        for start in range(0, len(order), group):
            chunk = sorted(order[start : start + group], key=lambda i: len(sequences[i].ids))
            batches.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
        rng.shuffle(batches)
        return [self._collate([sequences[i] for i in batch]) for batch in batches]

    def _optimizer(self) -> Any:
        import torch

        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim < 2 or name.endswith(".bias") else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        kwargs: dict[str, Any] = {"lr": self.config.learning_rate, "betas": (0.9, 0.999), "eps": 1e-8}
        if self.device == "cuda":
            kwargs["fused"] = True
        return torch.optim.AdamW([g for g in groups if g["params"]], **kwargs)

    def learning_rate(self, step: int, total: int) -> float:
        """Linear warm-up over ceil(warmup_ratio * total) steps, then cosine decay towards 0 (step is 0-based)."""
        peak = self.config.learning_rate
        warmup = math.ceil(self.config.warmup_ratio * total)
        if step < warmup:
            return peak * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))

    # --- loss -----------------------------------------------------------------------------------
    def _loss_sum(self, batch: _Batch) -> Any:
        """The summed cross-entropy over the batch's target tokens."""
        import torch
        import torch.nn.functional as F  # noqa: N812 - the usual name

        targets = batch.labels[:, 1:]
        keep = targets != IGNORE
        context = (
            torch.autocast(self.device, dtype=self._autocast_dtype)
            if self._autocast_dtype is not None
            else torch.autocast(self.device, enabled=False)
        )
        with context:
            if self._selective:
                hidden = self.model.base_model(
                    input_ids=batch.input_ids, attention_mask=batch.attention_mask
                ).last_hidden_state
                logits = self.model.get_output_embeddings()(hidden[:, :-1][keep])
            else:
                logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1][keep]
        return F.cross_entropy(logits.float(), targets[keep], reduction="sum")

    def evaluate(self, batches: Sequence[_Batch]) -> float:
        """Mean loss per target token over `batches`."""
        import torch

        self.model.eval()
        total = 0.0
        count = 0
        with torch.no_grad():
            for batch in batches:
                self._check_stop(self._step)
                total += float(self._loss_sum(batch))
                count += batch.targets
        self.model.train()
        return total / max(1, count)

    def _check_stop(self, step: int) -> None:
        if self.should_stop():
            raise TrainingCancelled(step)

    # --- the run --------------------------------------------------------------------------------
    def run(self, examples: Sequence[Example]) -> TrainingResult:
        import torch

        config = self.config
        if config.output_folder.exists():
            raise TrainingError(f"{config.output_folder} already exists; choose another name")
        if config.threads:
            torch.set_num_threads(config.threads)
        started = time.perf_counter()
        random.seed(config.seed)
        torch.manual_seed(config.seed)
        self._load()
        train_examples, eval_examples = split(examples, config.eval_fraction, config.seed)
        train_seqs, skipped_train = self._encode_all(train_examples)
        eval_seqs, skipped_eval = self._encode_all(eval_examples)
        if not train_seqs:
            raise TrainingError(
                "no training example has a target token left"
                + (f" after truncation to {config.max_length} tokens" if skipped_train else "")
            )
        rng = random.Random(config.seed)  # noqa: S311 - reproducible data order, not security
        eval_batches = [
            self._collate(eval_seqs[i : i + config.batch_size]) for i in range(0, len(eval_seqs), config.batch_size)
        ]
        micro_per_epoch = math.ceil(len(train_seqs) / config.batch_size)
        steps_per_epoch = math.ceil(micro_per_epoch / config.grad_accum_steps)
        total = config.epochs * steps_per_epoch
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        self.on_event(
            Prepared(
                len(train_examples),
                len(eval_examples),
                len(train_seqs),
                len(eval_seqs),
                skipped_train + skipped_eval,
                steps_per_epoch,
                total,
                self.device,
            )
        )

        eval_before = self.evaluate(eval_batches) if eval_batches else None
        if eval_before is not None:
            self.on_event(Evaluated("before", 0, eval_before, _perplexity(eval_before)))

        optimizer = self._optimizer()
        self.model.train()
        step = 0
        tokens = 0
        train_seconds = 0.0
        eval_after: float | None = eval_before
        last_lr = 0.0
        epoch = 0
        train_loss = float("nan")
        while step < total:
            epoch += 1
            epoch_started = time.perf_counter()
            epoch_tokens = 0
            epoch_loss = 0.0
            epoch_targets = 0
            batches = self._batches(train_seqs, rng)
            for first in range(0, len(batches), config.grad_accum_steps):
                if step >= total:
                    break
                group = batches[first : first + config.grad_accum_steps]
                targets = sum(b.targets for b in group)
                last_lr = self.learning_rate(step, total)
                for param_group in optimizer.param_groups:
                    param_group["lr"] = last_lr
                step_started = time.perf_counter()
                step_loss = 0.0
                for batch in group:
                    self._check_stop(step)
                    loss = self._loss_sum(batch)
                    (loss / targets).backward()
                    step_loss += float(loss.detach())
                    epoch_tokens += batch.tokens
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step = self._step = step + 1
                tokens += sum(b.tokens for b in group)
                epoch_loss += step_loss
                epoch_targets += targets
                elapsed = train_seconds + time.perf_counter() - step_started
                self.on_event(StepDone(step, total, epoch, step_loss / targets, last_lr, tokens, elapsed))
                # The callback's time counts: what a caller records per step is part of training's cost.
                train_seconds += time.perf_counter() - step_started
            epoch_seconds = time.perf_counter() - epoch_started
            train_loss = epoch_loss / max(1, epoch_targets)
            eval_after = self.evaluate(eval_batches) if eval_batches else None
            if eval_after is not None:
                self.on_event(Evaluated("epoch", epoch, eval_after, _perplexity(eval_after)))
            self.on_event(
                EpochDone(
                    epoch,
                    step,
                    train_loss,
                    eval_after,
                    last_lr,
                    epoch_tokens / epoch_seconds if epoch_seconds > 0 else 0.0,
                    time.perf_counter() - started,
                )
            )
        if eval_after is not None:
            self.on_event(Evaluated("after", epoch, eval_after, _perplexity(eval_after)))
        self._check_stop(step)

        result = TrainingResult(
            steps=step,
            epochs=epoch,
            train_loss=train_loss,
            eval_loss_before=eval_before,
            eval_loss_after=eval_after,
            perplexity_before=_perplexity(eval_before) if eval_before is not None else None,
            perplexity_after=_perplexity(eval_after) if eval_after is not None else None,
            tokens=tokens,
            train_seconds=train_seconds,
            seconds=time.perf_counter() - started,
            tokens_per_second=tokens / train_seconds if train_seconds > 0 else 0.0,
            steps_per_second=step / train_seconds if train_seconds > 0 else 0.0,
            train_examples=len(train_examples),
            eval_examples=len(eval_examples),
            device=self.device,
            output_folder=config.output_folder,
        )
        self._save(result)
        self.on_event(Saved(config.output_folder))
        return result

    def _save(self, result: TrainingResult) -> None:
        """Weights, tokenizer, config and manifest, written aside, made durable and renamed into place."""
        target = self.config.output_folder
        try:
            self._write_checkpoint(target, result)
        except TrainingError:
            raise
        except Exception as exc:
            if _out_of_space(exc):
                raise TrainingError(
                    f"the checkpoint was not saved: no space left on the device holding {target.parent}"
                ) from exc
            if isinstance(exc, OSError):
                raise TrainingError(f"the checkpoint was not saved in {target.parent}: {exc.strerror or exc}") from exc
            raise

    def _write_checkpoint(self, target: Path, result: TrainingResult) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self.model.config.use_cache = True
        tmp = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX.format(name=target.name), dir=target.parent))
        try:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            hyper = {
                k: v
                for k, v in asdict(self.config).items()
                if k not in ("base_folder", "output_folder", "manifest", "threads")
            }
            manifest = {
                "base_model": str(self.config.base_folder),
                "hyperparameters": hyper,
                "metrics": result.metrics(),
                **self.config.manifest,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
            # mkdtemp makes private folders; the server may run as another user (Docker).
            tmp.chmod(0o755)
            for path in tmp.iterdir():
                path.chmod(0o644)
                fsync_path(path)
            fsync_path(tmp)
            if target.exists():
                raise TrainingError(f"{target} appeared while training; the checkpoint was not saved")
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # The rename survives a power cut too. Past the rename the checkpoint is in place and
        # complete, whatever this says: it must not fail the run.
        with contextlib.suppress(OSError):
            fsync_path(target.parent)


def _out_of_space(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    # safetensors reports a full disk in its own exception type, the OS error only in its text.
    return "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)


def partial_checkpoints(output_folder: Path) -> list[Path]:
    """The hidden folders a save into `output_folder` left behind when its process was killed."""
    pattern = re.compile(re.escape(PARTIAL_PREFIX.format(name=output_folder.name)) + r"[a-z0-9_]+$")
    try:
        return sorted(p for p in output_folder.parent.iterdir() if pattern.match(p.name) and p.is_dir())
    except FileNotFoundError:
        return []


def saved_manifest(output_folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete checkpoint in `output_folder` (written last, before the rename); else None."""
    try:
        manifest = json.loads((output_folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not (output_folder / "config.json").is_file():
        return None
    return manifest


def _perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))  # capped: a diverged run has an absurd but finite perplexity


def train(
    config: TrainingConfig,
    examples: Sequence[Example],
    *,
    on_event: Callable[[Event], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Fine-tune `config.base_folder` on `examples` and save the result to `config.output_folder`."""
    return Trainer(config, on_event=on_event, should_stop=should_stop).run(examples)
