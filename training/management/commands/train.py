"""Fine-tune the local model in this process, with a progress bar; each epoch's metrics go to the database."""

from __future__ import annotations

import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from llmsite.devices import DEVICES
from llmsite.errors import ApplicationError
from training import services
from training.models import TrainingRun
from training.trainer import EpochDone, Evaluated, Event, Prepared, Saved, StepDone


class Command(BaseCommand):
    help = (
        "Fine-tune a local model on datasets (names from training/data/ or TRAINING_DATASETS_DIR, 'feedback', "
        "or .jsonl/.txt/.md paths) and save it under MODELS_DIR/<name>/, ready to serve. --method dpo trains on "
        "preference pairs (preferences, arena, feedback-pairs, or .jsonl files of pairs)."
    )

    def add_arguments(self, parser):
        defaults = services.DEFAULTS
        parser.add_argument(
            "--dataset",
            dest="datasets",
            action="append",
            metavar="NAME_OR_PATH",
            help="Repeat for several (default: dialogue; for dpo: preferences). Shipped: dialogue, knowledge, "
            "preferences; also feedback, feedback-pairs, arena.",
        )
        parser.add_argument(
            "--method",
            choices=TrainingRun.Method.values,
            help="sft (default): learn the answers; dpo: prefer the chosen of two answers (preference datasets).",
        )
        parser.add_argument("--beta", type=float, help="dpo only: closeness to the base model (default 0.1).")
        parser.add_argument(
            "--lora", action="store_true", help="dpo only: train LoRA adapters, merged into the saved model."
        )
        parser.add_argument("--name", help="Model name (default: <base model>-ft-<timestamp>).")
        parser.add_argument("--base-model", help=f"Model to fine-tune (default: {settings.TRAINING_BASE_MODEL}).")
        parser.add_argument("--epochs", type=int, help=f"Passes over the data (default {defaults['epochs']}).")
        parser.add_argument("--max-steps", type=int, help="Stop after this many optimizer steps (default: no limit).")
        parser.add_argument("--lr", dest="learning_rate", type=float, help="Peak learning rate (default 5e-5).")
        parser.add_argument(
            "--batch-size", type=int, help=f"Sequences per micro-batch (default {defaults['batch_size']})."
        )
        parser.add_argument(
            "--grad-accum", dest="grad_accum_steps", type=int, help="Micro-batches per step (default 1)."
        )
        parser.add_argument("--warmup-ratio", type=float, help="Share of steps warming up (default 0.1).")
        parser.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0).")
        parser.add_argument("--max-length", type=int, help=f"Tokens per sequence (default {defaults['max_length']}).")
        parser.add_argument("--eval-fraction", type=float, help="Share held out for evaluation (default 0.1).")
        parser.add_argument("--seed", type=int, help="Seed for the split, the order and the weights (default 0).")
        parser.add_argument("--device", choices=DEVICES, help=f"Default: TRAINING_DEVICE ({settings.TRAINING_DEVICE}).")
        parser.add_argument(
            "--threads",
            type=int,
            default=settings.TRAINING_THREADS or None,
            help="torch threads (default: TRAINING_THREADS, else torch's choice).",
        )
        parser.add_argument("--serve", action="store_true", help="Make the result the served model when done.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, threads=None, no_progress=False, **options):
        fields = {key: options.get(key) for key in [*services.DEFAULTS, *services.METHOD_FIELDS, "name", "base_model"]}
        fields["device"] = options.get("device")
        fields["serve"] = options.get("serve", False)
        services.runs_reap(startup=False)
        try:
            run = services.run_create(source="cli", claim=True, **fields)
        except ApplicationError as exc:
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from exc
        how = f"dpo (beta {run.beta:g}{', LoRA' if run.lora else ''})" if run.method == "dpo" else "sft"
        self.stdout.write(
            f"run #{run.pk}: fine-tuning {run.base_model} ({how}) on {', '.join(run.datasets)} into {run.name} "
            f"(epochs {run.epochs}, max steps {run.max_steps or '-'}, lr {run.learning_rate:g}, "
            f"batch {run.batch_size}x{run.grad_accum_steps})"
        )
        progress = _Progress(self, disable=no_progress)
        # SIGTERM ends like Ctrl-C: the run is recorded as interrupted, not left running.
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            run = services.run_execute(run, on_event=progress, threads=threads, export_inline=True)
        except KeyboardInterrupt:
            raise CommandError(f"interrupted: run #{run.pk} is recorded as cancelled, nothing was saved") from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            progress.close()
        self._report(run)

    def _report(self, run: TrainingRun) -> None:
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"run #{run.pk} {run.status}: {run.error}")
        metrics = run.final_metrics
        if run.method == "dpo" and "preference_accuracy_after" in metrics:
            self.stdout.write(
                f"held-out preference accuracy {_num(metrics.get('preference_accuracy_before'), 3)} -> "
                f"{_num(metrics.get('preference_accuracy_after'), 3)}; reward margin "
                f"{_num(metrics.get('reward_margin_after'), 3)}"
            )
        self.stdout.write(
            f"eval loss {_num(run.eval_loss_before)} -> {_num(run.eval_loss_after)} "
            f"(perplexity {_num(run.perplexity_before, 2)} -> {_num(run.perplexity_after, 2)}); "
            f"{metrics.get('steps')} steps in {metrics.get('train_seconds', 0):.1f} s: "
            f"{metrics.get('steps_per_second', 0):.3f} steps/s, {metrics.get('tokens_per_second', 0):.0f} tokens/s"
        )
        self.stdout.write(self.style.SUCCESS(f"saved {run.output_dir}"))
        if run.serve and "serve_error" not in metrics:
            self.stdout.write(f"now serving hf:{run.name}")
        else:
            self.stdout.write(
                f"serve it: manage.py reload_model --provider hf --model {run.name}, or POST /api/v1/providers/active "
                f'{{"provider": "hf", "model": "{run.name}"}}'
                + (f" ({metrics['serve_error']})" if "serve_error" in metrics else "")
            )


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class _Progress:
    """The trainer's events as a tqdm bar over optimizer steps, and one line per epoch."""

    def __init__(self, command: BaseCommand, *, disable: bool):
        self.command = command
        self.disable = disable
        self.bar: tqdm | None = None

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.command.stderr)
        else:
            self.command.stderr.write(line)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Prepared):
            self.write(
                f"{event.train_examples} training and {event.eval_examples} held-out examples "
                f"({event.train_sequences}/{event.eval_sequences} sequences"
                + (f", {event.skipped} skipped: nothing to learn after truncation" if event.skipped else "")
                + f") on {event.device}; {event.total_steps} steps"
            )
            self.bar = tqdm(
                total=event.total_steps, unit="step", desc="training", disable=self.disable, file=self.command.stderr
            )
        elif isinstance(event, Evaluated) and event.stage == "before":
            if "preference_accuracy" in event.extra:
                self.write(
                    f"eval DPO loss before training {event.loss:.4f} "
                    f"(preference accuracy {event.extra['preference_accuracy']:.3f})"
                )
            else:
                self.write(f"eval loss before training {event.loss:.4f} (perplexity {event.perplexity:.2f})")
        elif isinstance(event, StepDone) and self.bar is not None:
            self.bar.update(event.step - self.bar.n)
            rate = event.tokens / event.elapsed if event.elapsed else 0.0
            self.bar.set_postfix(
                epoch=event.epoch, loss=f"{event.loss:.4f}", lr=f"{event.learning_rate:.2e}", tok_s=f"{rate:.0f}"
            )
        elif isinstance(event, EpochDone):
            preference = (
                f", preference accuracy {event.extra['preference_accuracy']:.3f}"
                if "preference_accuracy" in event.extra
                else ""
            )
            self.write(
                f"epoch {event.epoch}: step {event.step}, train loss {event.train_loss:.4f}, "
                f"eval loss {_num(event.eval_loss)}{preference}, {event.tokens_per_second:.0f} tokens/s"
            )
        elif isinstance(event, Saved):
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
