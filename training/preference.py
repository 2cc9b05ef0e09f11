"""Preference training (DPO) of a local Hugging Face model folder with TRL's DPOTrainer. Plain Python: no Django.

    result = train_dpo(TrainingConfig(...), pairs, DpoOptions(beta=0.1), on_event=print, should_stop=...)

It behaves as the SFT trainer (training.trainer) does towards its caller, so the service records
both the same way:
- the held-out pairs (the same seeded split) are evaluated before training and after every epoch:
  the eval loss is the DPO loss on them; `preference_accuracy` (the share of held-out pairs whose
  chosen answer the model finds likelier than the rejected one, summed log-probabilities of the
  answer tokens), and TRL's `reward_accuracy` and `reward_margin` (implicit rewards against the
  reference model) ride along in the events' `extra`;
- the same events (Prepared, Evaluated, StepDone, EpochDone, Saved) reach `on_event`, from TRL's
  callbacks; `should_stop()` is checked before every optimizer step and raises TrainingCancelled;
- the checkpoint is written by the SFT trainer's own atomic save (hidden folder, fsync, rename,
  the same manifest). With `lora`, the LoRA adapters are merged into the weights first, so the
  result is a plain model folder like any other.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from training.trainer import (
    EpochDone,
    Evaluated,
    Event,
    Prepared,
    Saved,
    StepDone,
    Trainer,
    TrainingCancelled,
    TrainingConfig,
    TrainingError,
    TrainingResult,
    split,
)


@dataclass(frozen=True)
class PreferencePair:
    """One preference: a conversation ending with a user turn, a better and a worse answer to it."""

    messages: tuple[tuple[str, str], ...]  # (role, content), the last one the user's
    chosen: str
    rejected: str
    source: str = ""  # where it came from, for error messages ("preferences.jsonl:3", "arena", "feedback")


@dataclass(frozen=True)
class DpoOptions:
    beta: float = 0.1  # how far the policy may move from the reference: higher keeps it closer
    lora: bool = False  # train LoRA adapters (peft) instead of every weight; merged before saving
    lora_rank: int = 16
    lora_alpha: int = 32


def _chat(messages: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in messages]


def answer_logprob(model: Any, tokenizer: Any, messages: Sequence[tuple[str, str]], answer: str) -> tuple[float, int]:
    """(summed log-probability, token count) of `answer` and its end token as the assistant's reply to `messages`."""
    import torch

    prompt = tokenizer.apply_chat_template(_chat(messages), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        _chat([*messages, ("assistant", answer)]), tokenize=False, add_generation_prompt=False
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    start = len(prompt_ids)
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, :-1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    targets = torch.tensor(ids[1:], device=device)
    picked = logprobs.gather(1, targets[:, None])[:, 0]
    answer_part = picked[start - 1 :]
    return float(answer_part.sum()), int(answer_part.numel())


def preference_accuracy(
    model: Any, tokenizer: Any, pairs: Sequence[PreferencePair], should_stop: Callable[[], bool] | None = None
) -> dict[str, float]:
    """How often the model finds the chosen answer likelier than the rejected one, on `pairs`.

    `preference_accuracy`: by the answers' summed log-probabilities (what DPO's loss compares);
    `preference_accuracy_per_token`: by their mean per token, which does not favour the shorter
    answer; `logprob_margin`: the mean of chosen minus rejected summed log-probabilities.
    """
    if not pairs:
        return {}
    was_training = model.training
    model.eval()
    wins = per_token_wins = 0
    margin = 0.0
    try:
        for pair in pairs:
            if should_stop is not None and should_stop():
                raise TrainingCancelled(0)
            chosen, chosen_tokens = answer_logprob(model, tokenizer, pair.messages, pair.chosen)
            rejected, rejected_tokens = answer_logprob(model, tokenizer, pair.messages, pair.rejected)
            wins += chosen > rejected
            per_token_wins += chosen / max(1, chosen_tokens) > rejected / max(1, rejected_tokens)
            margin += chosen - rejected
    finally:
        model.train(was_training)
    return {
        "preference_accuracy": wins / len(pairs),
        "preference_accuracy_per_token": per_token_wins / len(pairs),
        "logprob_margin": margin / len(pairs),
    }


class PreferenceTrainer(Trainer):
    """One DPO run: the SFT trainer's loading and saving, TRL's DPOTrainer for the optimisation."""

    def __init__(
        self,
        config: TrainingConfig,
        options: DpoOptions,
        *,
        on_event: Callable[[Event], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        manifest = {**config.manifest, "method": "dpo", "dpo": dataclasses.asdict(options)}
        super().__init__(dataclasses.replace(config, manifest=manifest), on_event=on_event, should_stop=should_stop)
        self.options = options

    def run(self, pairs: Sequence[PreferencePair]) -> TrainingResult:  # type: ignore[override]
        import torch

        config = self.config
        if config.output_folder.exists():
            raise TrainingError(f"{config.output_folder} already exists; choose another name")
        if not pairs:
            raise TrainingError("no preference pairs to train on")
        if config.threads:
            torch.set_num_threads(config.threads)
        started = time.perf_counter()
        torch.manual_seed(config.seed)
        self._load()
        train_pairs, eval_pairs = split(pairs, config.eval_fraction, config.seed)
        with tempfile.TemporaryDirectory(prefix="llmsite-dpo-") as scratch:
            trainer, clock = self._dpo_trainer(train_pairs, eval_pairs, scratch)
            return self._train(trainer, clock, train_pairs, eval_pairs, started)

    def _dpo_trainer(
        self, train_pairs: Sequence[PreferencePair], eval_pairs: Sequence[PreferencePair], scratch: str
    ) -> tuple[Any, _Relay]:
        from datasets import Dataset
        from datasets.utils.logging import disable_progress_bar
        from trl import DPOConfig, DPOTrainer

        disable_progress_bar()
        config = self.config
        args = DPOConfig(
            output_dir=scratch,
            num_train_epochs=config.epochs,
            max_steps=config.max_steps or -1,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=config.batch_size,
            gradient_accumulation_steps=config.grad_accum_steps,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_ratio,  # below 1: a share of the steps
            lr_scheduler_type="cosine",
            weight_decay=config.weight_decay,
            max_grad_norm=1.0,
            max_length=config.max_length,
            beta=self.options.beta,
            seed=config.seed,
            data_seed=config.seed,
            use_cpu=self.device == "cpu",
            # TRL's defaults are bf16 and gradient checkpointing; the SFT trainer uses float32 (bf16
            # autocast on a GPU that has it) and no checkpointing: keep the two alike.
            bf16=self._autocast_dtype is not None,
            gradient_checkpointing=False,
            eval_strategy="epoch" if eval_pairs else "no",
            save_strategy="no",
            logging_strategy="steps",
            logging_steps=1,
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        peft_config = None
        if self.options.lora:
            from peft import LoraConfig

            peft_config = LoraConfig(
                r=self.options.lora_rank,
                lora_alpha=self.options.lora_alpha,
                lora_dropout=0.0,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            )
        from transformers import PrinterCallback, TrainerCallback

        relay = type("Relay", (_Relay, TrainerCallback), {})(self, eval_pairs)
        trainer = DPOTrainer(
            model=self.model,
            args=args,
            train_dataset=_dataset(Dataset, train_pairs),
            eval_dataset=_dataset(Dataset, eval_pairs) if eval_pairs else None,
            processing_class=self.tokenizer,
            callbacks=[relay],
            peft_config=peft_config,
        )
        trainer.remove_callback(PrinterCallback)  # progress reaches the caller as events, not printed dicts
        return trainer, relay

    def _train(
        self,
        trainer: Any,
        relay: _Relay,
        train_pairs: Sequence[PreferencePair],
        eval_pairs: Sequence[PreferencePair],
        started: float,
    ) -> TrainingResult:
        config = self.config
        train_rows = len(trainer.train_dataset)
        micro_per_epoch = math.ceil(train_rows / config.batch_size)
        steps_per_epoch = max(1, math.ceil(micro_per_epoch / config.grad_accum_steps))
        total = config.epochs * steps_per_epoch
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        if not train_rows:
            raise TrainingError(f"no preference pair fits in {config.max_length} tokens")
        self.on_event(
            Prepared(
                len(train_pairs),
                len(eval_pairs),
                train_rows,
                len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0,
                len(train_pairs) - train_rows,
                steps_per_epoch,
                total,
                self.device,
            )
        )
        relay.total = total
        relay.started = started
        before = relay.evaluate_now(trainer, "before", 0)
        try:
            trainer.train()
        except TrainingCancelled:
            raise
        except (RuntimeError, ValueError) as exc:
            raise TrainingError(f"DPO training failed: {exc}") from exc
        self._check_stop(relay.step)
        after = relay.last_eval
        if after is not None:
            self.on_event(Evaluated("after", relay.epoch, after.loss, math.nan, after.extra))

        model = trainer.accelerator.unwrap_model(trainer.model)
        if self.options.lora:
            model = model.merge_and_unload()  # a plain model folder: the pool serves it like any other
        self.model = model
        extra: dict[str, Any] = {"method": "dpo", "beta": self.options.beta, "lora": self.options.lora}
        for stage, figures in (("before", before), ("after", after)):
            if figures is not None:
                extra.update({f"{key}_{stage}": value for key, value in figures.extra.items()})
        result = TrainingResult(
            steps=relay.step,
            epochs=relay.epoch,
            train_loss=relay.train_loss if not math.isnan(relay.train_loss) else relay.epoch_loss(),
            eval_loss_before=before.loss if before else None,
            eval_loss_after=after.loss if after else None,
            perplexity_before=None,  # exp(DPO loss) means nothing
            perplexity_after=None,
            tokens=relay.tokens,
            train_seconds=relay.train_seconds,
            seconds=time.perf_counter() - started,
            tokens_per_second=relay.tokens / relay.train_seconds if relay.train_seconds > 0 else 0.0,
            steps_per_second=relay.step / relay.train_seconds if relay.train_seconds > 0 else 0.0,
            train_examples=len(train_pairs),
            eval_examples=len(eval_pairs),
            device=self.device,
            output_folder=config.output_folder,
            extra=extra,
        )
        self._save(result)
        self.on_event(Saved(config.output_folder))
        return result


def _dataset(dataset_class: Any, pairs: Sequence[PreferencePair]) -> Any:
    """TRL's conversational preference format: the prompt as messages, each answer as one assistant message."""
    return dataset_class.from_list(
        [
            {
                "prompt": _chat(pair.messages),
                "chosen": [{"role": "assistant", "content": pair.chosen}],
                "rejected": [{"role": "assistant", "content": pair.rejected}],
            }
            for pair in pairs
        ]
    )


@dataclass
class _Figures:
    loss: float
    extra: dict[str, float]


class _Relay:
    """TRL's callbacks as the trainer's events; the cancel check before every optimizer step.

    Mixed with transformers' TrainerCallback when used (`_relay`), so importing this module stays light.
    """

    def __init__(self, owner: PreferenceTrainer, eval_pairs: Sequence[PreferencePair]):
        self.owner = owner
        self.eval_pairs = eval_pairs
        self.total = 0
        self.started = 0.0
        self.step = 0
        self.epoch = 0
        self.tokens = 0
        self.train_seconds = 0.0
        self.learning_rate = 0.0
        self.last_eval: _Figures | None = None
        self._step_started = 0.0
        self._epoch_losses: list[float] = []
        self._epoch_tokens = 0
        self._epoch_seconds = 0.0
        self._last_loss = math.nan
        self.train_loss = math.nan  # the last finished epoch's mean step loss

    def epoch_loss(self) -> float:
        return sum(self._epoch_losses) / len(self._epoch_losses) if self._epoch_losses else self._last_loss

    # --- evaluation --------------------------------------------------------------------------
    def evaluate_now(self, trainer: Any, stage: str, epoch: int) -> _Figures | None:
        if not self.eval_pairs:
            return None
        metrics = trainer.evaluate()  # reaches on_evaluate, which records the figures
        figures = self._figures(metrics)
        self.owner.on_event(Evaluated(stage, epoch, figures.loss, math.nan, figures.extra))  # type: ignore[arg-type]
        return figures

    def _figures(self, metrics: dict[str, float]) -> _Figures:
        extra = {
            **preference_accuracy(self.owner.model, self.owner.tokenizer, self.eval_pairs, self.owner.should_stop),
            "reward_accuracy": float(metrics.get("eval_rewards/accuracies", math.nan)),
            "reward_margin": float(metrics.get("eval_rewards/margins", math.nan)),
        }
        return _Figures(float(metrics["eval_loss"]), extra)

    # --- TRL / transformers callbacks ----------------------------------------------------------
    def on_step_begin(self, args, state, control, **kwargs):
        if self.owner.should_stop():
            raise TrainingCancelled(state.global_step)
        self._step_started = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs or state.global_step == self.step:
            return
        self.step = state.global_step
        self.epoch = max(1, math.ceil(state.epoch or 0))
        self._last_loss = float(logs["loss"])
        self._epoch_losses.append(self._last_loss)
        self.learning_rate = float(logs.get("learning_rate", self.learning_rate))
        tokens = int(logs.get("num_tokens", self.tokens))
        self._epoch_tokens += tokens - self.tokens
        self.tokens = tokens
        # The callback's own time counts, as in the SFT trainer: what a caller records per step is training's cost.
        seconds = time.perf_counter() - self._step_started
        self.owner.on_event(
            StepDone(
                self.step,
                self.total,
                self.epoch,
                self._last_loss,
                self.learning_rate,
                self.tokens,
                self.train_seconds + seconds,
            )
        )
        seconds = time.perf_counter() - self._step_started
        self.train_seconds += seconds
        self._epoch_seconds += seconds

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.global_step == 0:  # the evaluation before training: evaluate_now reports it
            return
        figures = self._figures(metrics or {})
        self.last_eval = figures
        self.owner.on_event(Evaluated("epoch", self.epoch, figures.loss, math.nan, figures.extra))
        self._epoch_done(figures)

    def on_epoch_end(self, args, state, control, **kwargs):
        if not self.eval_pairs and self._epoch_losses:
            self._epoch_done(None)

    def _epoch_done(self, figures: _Figures | None) -> None:
        self.train_loss = self.epoch_loss()
        self.owner.on_event(
            EpochDone(
                self.epoch,
                self.step,
                self.train_loss,
                figures.loss if figures else None,
                self.learning_rate,
                self._epoch_tokens / self._epoch_seconds if self._epoch_seconds > 0 else 0.0,
                time.perf_counter() - self.started,
                figures.extra if figures else {},
            )
        )
        self._epoch_losses = []
        self._epoch_tokens = 0
        self._epoch_seconds = 0.0


def train_dpo(
    config: TrainingConfig,
    pairs: Sequence[PreferencePair],
    options: DpoOptions | None = None,
    *,
    on_event: Callable[[Event], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """DPO-train `config.base_folder` on `pairs` and save the result to `config.output_folder`."""
    return PreferenceTrainer(config, options or DpoOptions(), on_event=on_event, should_stop=should_stop).run(pairs)
