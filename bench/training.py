"""Fine-tuning speed: `manage.py train` against a raw transformers/torch loop and TRL's SFTTrainer, in one run.

    .venv/bin/python bench/training.py [--steps 10] [--rounds 3] [--threads N] [--sides command,raw,trl]

Both fine-tune the real SmolLM2-135M-Instruct (prepared under data/models) on the shipped
`dialogue` dataset with the command's defaults (batch 4, max_length 512, lr 5e-5, float32 on
the CPU), for `--steps` optimizer steps, each in a fresh process. Per round:
1. `manage.py train --max-steps N --no-progress` with a throwaway DATA_DIR and MODELS_DIR (the
   base model linked in): steps/s and tokens/s over its optimizer steps, the per-step database
   writes included (from the checkpoint's manifest), and the command's wall time (start-up,
   loading, evaluation before and after, saving);
2. the textbook loop: `model(input_ids, attention_mask, labels).loss.backward()`, clipping,
   AdamW, on the very same batches in the same order (prepared by the trainer's own code), so
   the two differ only in the loop.
Rounds alternate so that load from other processes hits both alike; the median of the per-round
ratios is the figure to read (absolute numbers vary with what else runs on a small shared machine: with two
cores and other busy processes, torch's two spinning OpenMP threads can run several times slower
than one, hence `--threads`, given to both sides). Writes bench/results/training.json.

3. `--sides command,trl`: TRL's `SFTTrainer` (assistant-only loss, the same training split of
   `dialogue`, batch 4, max_length 512, lr 5e-5 with warm-up and cosine decay, the same number of
   optimizer steps), tokens/s over its optimizer steps (non-padding tokens, as the command counts
   them). SmolLM2's chat template has no `{% generation %}` markers, which assistant-only loss
   needs, so TRL gets the same template with them around each assistant turn and its `<|im_end|>`
   (what the command's trainer labels). The figures go under `trl_sft` in the results file, beside
   the earlier sides' figures, with the per-round ratio TRL / command. training/README.md applies
   the rule: TRL is adopted for SFT only within 10 % of the command's tokens/s.

    .venv/bin/python bench/training.py --methods [--steps 16] [--threads 1]

SFT against DPO on the same preferences (the shipped `preferences`, 42 pairs, a quarter held out
by the same seeded split): `manage.py train` on the chosen answers as chat examples (method sft)
and on the pairs (method dpo), the same steps and defaults otherwise. For each: the eval loss
before and after (sft: cross-entropy on the held-out chosen answers; dpo: the DPO loss on the
held-out pairs) and the held-out preference accuracy of the base model and of the result (does the
model give the chosen answer a higher log-likelihood than the rejected one? summed, and per token).
Written under `sft_vs_dpo` in bench/results/training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # run as a script, bench/ would shadow the apps
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "SmolLM2-135M-Instruct"
RESULTS = ROOT / "bench" / "results" / "training.json"


def base_folder() -> Path:
    folder = Path(os.environ.get("MODELS_DIR", ROOT / "data" / "models")) / MODEL
    if not (folder / "config.json").is_file():
        sys.exit(f"{folder} is missing: run `manage.py prepare_models` first")
    return folder.resolve()


def bench_command(steps: int, threads: int | None) -> dict:
    """One `manage.py train` run in its own process and folders."""
    with tempfile.TemporaryDirectory(prefix="llmsite-bench-train-") as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        (models / MODEL).symlink_to(base_folder(), target_is_directory=True)
        env = {**os.environ, "DATA_DIR": tmp, "MODELS_DIR": str(models), "LOG_LEVEL": "WARNING"}
        if threads:
            env["TRAINING_THREADS"] = str(threads)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        command = [sys.executable, "manage.py", "train", "--max-steps", str(steps), "--name", "bench", "--no-progress"]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode:
            sys.exit(f"manage.py train failed:\n{done.stdout}\n{done.stderr}")
        metrics = json.loads((models / "bench" / "llmsite-training.json").read_text())["metrics"]
    return {
        "steps_per_s": metrics["steps_per_second"],
        "tokens_per_s": metrics["tokens_per_second"],
        "train_s": metrics["train_seconds"],
        "wall_s": wall,
        "tokens": metrics["tokens"],
        "eval_loss_before": metrics["eval_loss_before"],
        "eval_loss_after": metrics["eval_loss_after"],
    }


def raw_loop(steps: int, threads: int | None) -> dict:
    """The textbook loop on the batches the command trains on (run in a child process by bench_raw)."""
    import torch

    from training import datasets as ds
    from training import services
    from training.trainer import Trainer, TrainingConfig, split

    if threads:
        torch.set_num_threads(threads)
    defaults = services.DEFAULTS
    config = TrainingConfig(
        base_folder=base_folder(),
        output_folder=Path(tempfile.gettempdir()) / "unused",
        batch_size=defaults["batch_size"],
        max_length=defaults["max_length"],
        eval_fraction=defaults["eval_fraction"],
        seed=defaults["seed"],
        device="cpu",
    )
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    prep = Trainer(config)
    prep._load()  # the model and tokenizer, loaded the way the command loads them
    examples = ds.load("dialogue", max_examples=100_000, max_bytes=100_000_000)
    train_examples, _ = split(examples, config.eval_fraction, config.seed)
    sequences, _ = prep._encode_all(train_examples)
    rng = random.Random(config.seed)
    batches = []
    while len(batches) < steps:
        batches += prep._batches(sequences, rng)
    model = prep.model
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=defaults["learning_rate"])
    warmup = max(1, round(defaults["warmup_ratio"] * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    seconds = 0.0
    tokens = 0
    for batch in batches[:steps]:
        started = time.perf_counter()
        loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - started
        tokens += batch.tokens
    return {"steps_per_s": steps / seconds, "tokens_per_s": tokens / seconds, "train_s": seconds, "tokens": tokens}


# SmolLM2's template with the markers TRL's assistant-only loss needs; it renders the same text.
SMOLLM2_TRAINING_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' + '\\n' }}{% endgeneration %}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def trl_sft(steps: int, threads: int | None) -> dict:
    """TRL's SFTTrainer on the command's training split (run in a child process by bench_trl)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from training import datasets as ds
    from training import services
    from training.trainer import split

    if threads:
        torch.set_num_threads(threads)
    defaults = services.DEFAULTS
    examples = ds.load("dialogue", max_examples=100_000, max_bytes=100_000_000)
    train_examples, _ = split(examples, defaults["eval_fraction"], defaults["seed"])
    rows = [{"messages": [{"role": r, "content": c} for r, c in e.messages]} for e in train_examples]
    tokenizer = AutoTokenizer.from_pretrained(base_folder())
    tokenizer.chat_template = SMOLLM2_TRAINING_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(base_folder(), dtype=torch.float32)

    class Clock(TrainerCallback):
        """Seconds inside optimizer steps only, as the command counts them."""

        seconds = 0.0
        started = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds += time.perf_counter() - self.started

    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="llmsite-bench-trl-") as out:
        config = SFTConfig(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=defaults["batch_size"],
            gradient_accumulation_steps=defaults["grad_accum_steps"],
            learning_rate=defaults["learning_rate"],
            warmup_steps=max(1, round(defaults["warmup_ratio"] * steps)),
            lr_scheduler_type="cosine",
            max_length=defaults["max_length"],
            assistant_only_loss=True,
            seed=defaults["seed"],
            use_cpu=True,
            # TRL's defaults are bf16 autocast and gradient checkpointing: on the CPU, many times slower than
            # the float32 the command trains in, and not what is being compared.
            bf16=False,
            gradient_checkpointing=False,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            logging_steps=10_000,
            disable_tqdm=True,
            dataloader_num_workers=0,
            include_num_input_tokens_seen="non_padding",
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[clock],
        )
        started = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen)
    return {
        "steps_per_s": steps / clock.seconds,
        "tokens_per_s": tokens / clock.seconds,
        "train_s": clock.seconds,
        "train_call_s": wall,
        "tokens": tokens,
    }


def _child(flag: str, steps: int, threads: int | None, what: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "llmsite.settings"}
    command = [sys.executable, __file__, flag, "--steps", str(steps), "--threads", str(threads or 0)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{what} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_raw(steps: int, threads: int | None) -> dict:
    return _child("--raw-child", steps, threads, "the raw loop")


def bench_trl(steps: int, threads: int | None) -> dict:
    return _child("--trl-child", steps, threads, "TRL's SFTTrainer")


def summary(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if isinstance(runs[0][k], int | float)]
    return {**{k: statistics.median(r[k] for r in runs) for k in keys}, "runs": runs}


def bench_methods(steps: int, threads: int | None) -> dict:
    """SFT on the chosen answers and DPO on the pairs, the same steps; held-out preference accuracy of each."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmsite.settings")
    django.setup()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training import datasets as ds
    from training import services
    from training.preference import preference_accuracy
    from training.trainer import split

    if threads:
        torch.set_num_threads(threads)
    pairs = ds.load_pairs("preferences", max_examples=100_000, max_bytes=100_000_000)
    eval_fraction = 0.25
    _, held_out = split(pairs, eval_fraction, services.DEFAULTS["seed"])
    tokenizer = AutoTokenizer.from_pretrained(base_folder())

    def accuracy(folder: Path) -> dict:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return preference_accuracy(model, tokenizer, held_out)

    results: dict = {"base": accuracy(base_folder()), "held_out_pairs": len(held_out), "pairs": len(pairs)}
    with tempfile.TemporaryDirectory(prefix="llmsite-bench-methods-") as tmp:
        chosen = Path(tmp) / "chosen.jsonl"
        chosen.write_text(
            "".join(
                json.dumps(
                    {
                        "messages": [
                            *({"role": r, "content": c} for r, c in p.messages),
                            {"role": "assistant", "content": p.chosen},
                        ]
                    }
                )
                + "\n"
                for p in pairs  # the same order: the same split holds the same pairs out
            )
        )
        models = Path(tmp) / "models"
        models.mkdir()
        (models / MODEL).symlink_to(base_folder(), target_is_directory=True)
        env = {**os.environ, "DATA_DIR": tmp, "MODELS_DIR": str(models), "LOG_LEVEL": "WARNING"}
        if threads:
            env["TRAINING_THREADS"] = str(threads)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        for method, dataset in (("sft", str(chosen)), ("dpo", "preferences")):
            command = [
                sys.executable, "manage.py", "train", "--method", method, "--dataset", dataset, "--name", method,
                "--max-steps", str(steps), "--epochs", "20", "--eval-fraction", str(eval_fraction), "--no-progress",
            ]  # fmt: skip
            started = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"manage.py train --method {method} failed:\n{done.stdout}\n{done.stderr}")
            metrics = json.loads((models / method / "llmsite-training.json").read_text())["metrics"]
            results[method] = {
                "wall_s": time.perf_counter() - started,
                "steps": metrics["steps"],
                "eval_loss_before": metrics["eval_loss_before"],
                "eval_loss_after": metrics["eval_loss_after"],
                "after": accuracy(models / method),
            }
            print(f"{method}: {json.dumps(results[method])}", flush=True)
    return results


def _ratio(ours: list[dict], theirs: list[dict], key: str) -> float:
    return statistics.median(o[key] / t[key] for o, t in zip(ours, theirs, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for all (default: torch's choice)")
    parser.add_argument(
        "--sides", default="command,raw", help="comma-separated: command, raw, trl (default: command,raw)"
    )
    parser.add_argument("--methods", action="store_true", help="SFT against DPO on the shipped preferences")
    parser.add_argument("--raw-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trl-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_child or args.trl_child:
        import django

        django.setup()  # training.services reads settings for its defaults
        fn = raw_loop if args.raw_child else trl_sft
        print(json.dumps(fn(args.steps, args.threads or None)))
        return

    if args.methods:
        figures = bench_methods(args.steps, args.threads or None)
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        results["sft_vs_dpo"] = {
            "command": " ".join(["bench/training.py", *sys.argv[1:]]),
            "load_average": os.getloadavg(),
            "model": MODEL,
            "dataset": "preferences",
            "threads": args.threads or None,
            **figures,
        }
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results["sft_vs_dpo"], indent=2))
        return

    import torch

    known = {
        "command": ("manage.py train", bench_command),
        "raw": ("raw loop", bench_raw),
        "trl": ("TRL SFTTrainer", bench_trl),
    }
    sides = [side.strip() for side in args.sides.split(",") if side.strip()]
    if "command" not in sides or any(side not in known for side in sides) or len(sides) < 2:
        sys.exit("--sides: command and at least one of raw, trl")
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side in sides:
            name, fn = known[side]
            load_before = os.getloadavg()[0]
            result = fn(args.steps, args.threads or None)
            result["load_1m"] = [load_before, os.getloadavg()[0]]
            runs[side].append(result)
            print(
                f"round {round_ + 1} {name:16} {result['steps_per_s']:.3f} steps/s "
                f"{result['tokens_per_s']:7.1f} tokens/s",
                flush=True,
            )
    command_runs = runs["command"]
    command = summary(command_runs)
    setup = {
        "command": " ".join(["bench/training.py", *sys.argv[1:]]),
        "load_average": os.getloadavg(),
        "model": MODEL,
        "dataset": "dialogue",
        "device": "cpu",
        "torch_threads": args.threads or torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "steps": args.steps,
        "rounds": args.rounds,
    }
    # Earlier figures of the sides not run this time stay in the file.
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    lines = [
        f"\nmanage.py train: {command['steps_per_s']:.3f} steps/s, {command['tokens_per_s']:.0f} tokens/s "
        f"(command wall {command['wall_s']:.0f} s for {args.steps} steps; eval loss "
        f"{command['eval_loss_before']:.3f} -> {command['eval_loss_after']:.3f})"
    ]
    if "raw" in runs:
        raw_runs = runs["raw"]
        raw = summary(raw_runs)
        results.update(setup)
        results["manage_py_train"] = command
        results["raw_loop"] = raw
        # Each round pairs the two back to back, so the per-round ratio cancels most of the load
        # that other processes put on the machine; the median of those is the headline figure.
        results["ratio_vs_raw"] = {
            "steps_per_s": _ratio(command_runs, raw_runs, "steps_per_s"),
            "tokens_per_s": _ratio(command_runs, raw_runs, "tokens_per_s"),
            "per_round_steps_per_s": [
                c["steps_per_s"] / r["steps_per_s"] for c, r in zip(command_runs, raw_runs, strict=True)
            ],
            "of_medians_steps_per_s": command["steps_per_s"] / raw["steps_per_s"],
        }
        lines.append(f"raw loop:        {raw['steps_per_s']:.3f} steps/s, {raw['tokens_per_s']:.0f} tokens/s")
        lines.append(
            f"ratio:           {results['ratio_vs_raw']['steps_per_s']:.2f}x steps/s (median of per-round ratios "
            f"{', '.join(f'{x:.2f}' for x in results['ratio_vs_raw']['per_round_steps_per_s'])})"
        )
    if "trl" in runs:
        trl_runs = runs["trl"]
        trl = summary(trl_runs)
        ratio = _ratio(trl_runs, command_runs, "tokens_per_s")
        results["trl_sft"] = {
            **setup,
            "manage_py_train": command,
            "trl_sft_trainer": trl,
            "ratio_trl_vs_command": {
                "tokens_per_s": ratio,
                "per_round_tokens_per_s": [
                    t["tokens_per_s"] / c["tokens_per_s"] for t, c in zip(trl_runs, command_runs, strict=True)
                ],
                "of_medians_tokens_per_s": trl["tokens_per_s"] / command["tokens_per_s"],
            },
            "adopt_trl_for_sft": ratio >= 0.9,  # the rule: within 10 % of the command's tokens/s
        }
        lines.append(f"TRL SFTTrainer:  {trl['steps_per_s']:.3f} steps/s, {trl['tokens_per_s']:.0f} tokens/s")
        lines.append(f"TRL / command:   {ratio:.2f}x tokens/s (median of per-round ratios)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join([*lines, f"written to {RESULTS.relative_to(ROOT)}"]))


if __name__ == "__main__":
    main()
