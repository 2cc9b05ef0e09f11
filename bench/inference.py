"""In-process generation speed: raw `model.generate` (the limit) against the provider, and the dtype question.

Part of the suite (`python -m bench`); runs alone too:

    .venv/bin/python -m bench.inference [--new-tokens 64] [--runs 3] [--dtype]

1. `single`: one greedy stream of a fixed story prompt, `--runs` timed runs after a warm-up,
   alternating run by run so load from other processes hits all alike: raw `model.generate` on
   the provider's own weights and input ids; `HFProvider.generate` one by one (LLM_BATCHING=off);
   `HFProvider.generate` through the batching scheduler (LLM_BATCHING=on).
2. `batch`: static batched `model.generate` (left padding, every row forced to the full length)
   at 8 (and 16) rows, the ceiling a scheduler works towards, against the batching provider
   with the same number of concurrent requests from threads.
3. `dtype`: float32 against bfloat16 on this CPU: one stream, prefill time (first token),
   static batch of 8, and the greedy answers to a few fixed prompts compared token by token.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import MODEL, MODEL_DIR, RESULTS, ROOT, load_snapshot, story_prompt
from inference.providers.base import GenerationRequest, SamplingParams
from inference.providers.hf import HFProvider

QUALITY_PROMPTS = [
    ("What is the capital of France?", "Paris"),
    ("What is 12 plus 30? Answer with a number.", "42"),
    ("Name the largest planet in our solar system.", "Jupiter"),
    ("Translate 'thank you' into Spanish.", "gracias"),
    ("Who wrote Romeo and Juliet?", "Shakespeare"),
]


def _provider(batching: bool, dtype: str = "float32") -> HFProvider:
    provider = HFProvider(MODEL, MODEL_DIR, device="cpu", dtype=dtype, batching=batching)
    provider.load()
    return provider


def _raw(provider: HFProvider, ids: list[int], new_tokens: int, *, force: bool = False) -> int:
    import torch

    input_ids = torch.tensor([ids])
    extra = {"min_new_tokens": new_tokens} if force else {}
    with torch.inference_mode():
        out = provider.hf_model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=new_tokens,
            do_sample=False,
            **extra,
        )
    return out.shape[1] - len(ids)


def static_batch(provider: HFProvider, rows: int, new_tokens: int) -> float:
    """Aggregate output tokens/s of one left-padded `model.generate` call over `rows` prompts."""
    import torch

    prompts = [provider.prepare(GenerationRequest(prompt=story_prompt(i))) for i in range(rows)]
    width = max(map(len, prompts))
    pad = provider.generation_config.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    started = time.perf_counter()
    with torch.inference_mode():
        out = provider.hf_model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
        )
    return rows * (out.shape[1] - width) / (time.perf_counter() - started)


def concurrent_provider(provider: HFProvider, clients: int, new_tokens: int) -> float:
    """Aggregate output tokens/s of `clients` simultaneous `generate` calls on the provider."""
    requests = [
        GenerationRequest(prompt=story_prompt(i), sampling=SamplingParams(max_new_tokens=new_tokens))
        for i in range(clients)
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(provider.generate, requests))
    return sum(c.usage.completion_tokens for c in done) / (time.perf_counter() - started)


def _rates(calls: dict, runs: int) -> dict:
    """Median output tokens/s of each call over `runs` runs after a warm-up, alternating run by run."""
    for call in calls.values():
        call()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            started = time.perf_counter()
            tokens = call()
            rates[name].append(tokens / (time.perf_counter() - started))
    out: dict = {name: round(statistics.median(values), 2) for name, values in rates.items()}
    out["runs"] = {name: [round(v, 2) for v in values] for name, values in rates.items()}
    return out


def part(name: str, new_tokens: int, runs: int, batch_rows: list[int], dtype: str) -> dict:
    """One isolated measurement (run in a process of its own, see `single`)."""
    request = GenerationRequest(prompt=story_prompt(0), sampling=SamplingParams(max_new_tokens=new_tokens))
    provider = _provider(name == "batched", dtype)
    try:
        if name == "raw":
            ids = provider.prepare(request)
            out = _rates({"raw_generate": lambda: _raw(provider, ids, new_tokens)}, runs)
            out["static_batch_generate"] = {
                rows: round(static_batch(provider, rows, new_tokens), 1) for rows in batch_rows
            }
        elif name == "unbatched":
            out = _rates({"provider_unbatched": lambda: provider.generate(request).usage.completion_tokens}, runs)
        else:
            out = _rates({"provider_batched": lambda: provider.generate(request).usage.completion_tokens}, runs)
            out["provider_batched_concurrent"] = {
                rows: round(concurrent_provider(provider, rows, new_tokens), 1) for rows in batch_rows
            }
        return out
    finally:
        provider.close()


def single(new_tokens: int, runs: int, batch_rows: list[int], dtype: str = "float32") -> dict:
    """Raw generate, the provider one by one, the provider batched: each in a fresh process.

    Isolated because torch's OpenMP pool belongs to the thread that first runs an operator: once
    one thread (say the main thread, for raw `generate`) has a pool, operators run from another
    live thread (the scheduler's) were measured here at ~15 instead of ~26 tokens/s, and the main
    thread slowed as well. The server has one such thread (the scheduler), so each part here does too.
    """
    out: dict = {"runs": {}}
    for name in ("raw", "unbatched", "batched"):
        command = [sys.executable, "-m", "bench.inference", "--part", name, "--new-tokens", str(new_tokens)]
        command += ["--runs", str(runs), "--rows", ",".join(map(str, batch_rows)), "--dtype-name", dtype]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bench.inference --part {name} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        out["runs"].update(result.pop("runs"))
        out.update(
            {k: ({int(r): v for r, v in val.items()} if isinstance(val, dict) else val) for k, val in result.items()}
        )
    out["dtype"] = dtype
    return out


def dtype_comparison(new_tokens: int, runs: int) -> dict:
    """float32 against bfloat16: speed alone and batched, prefill, and greedy answers token by token."""
    out: dict = {}
    answers: dict[str, list[list[int]]] = {}
    for dtype in ("float32", "bfloat16"):
        provider = _provider(False, dtype)
        try:
            ids = provider.prepare(GenerationRequest(prompt=story_prompt(0)))
            _raw(provider, ids, 4)
            speeds, prefill = [], []
            for _ in range(runs):
                started = time.perf_counter()
                speeds.append(_raw(provider, ids, new_tokens, force=True) / (time.perf_counter() - started))
                started = time.perf_counter()
                _raw(provider, ids, 1)
                prefill.append((time.perf_counter() - started) * 1000)
            answers[dtype] = []
            correct = 0
            for prompt, expected in QUALITY_PROMPTS:
                completion = provider.generate(
                    GenerationRequest(prompt=prompt, sampling=SamplingParams(max_new_tokens=32))
                )
                answers[dtype].append(provider.tokenizer(completion.text, add_special_tokens=False)["input_ids"])
                correct += expected.lower() in completion.text.lower()
            out[dtype] = {
                "single_tokens_per_s": round(statistics.median(speeds), 2),
                "first_token_ms": round(statistics.median(prefill), 1),
                "static_batch_8_tokens_per_s": round(static_batch(provider, 8, new_tokens), 1),
                "quality_correct": f"{correct}/{len(QUALITY_PROMPTS)}",
            }
        finally:
            provider.close()
    same, prefix = 0, []
    for a, b in zip(answers["float32"], answers["bfloat16"], strict=True):
        same += a == b
        common = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        prefix.append(common)
    out["bfloat16_vs_float32"] = {
        "identical_answers": f"{same}/{len(QUALITY_PROMPTS)}",
        "mean_common_prefix_tokens": round(statistics.fmean(prefix), 1),
        "speedup_single": round(out["bfloat16"]["single_tokens_per_s"] / out["float32"]["single_tokens_per_s"], 2),
        "speedup_batch_8": round(
            out["bfloat16"]["static_batch_8_tokens_per_s"] / out["float32"]["static_batch_8_tokens_per_s"], 2
        ),
        "first_token_ratio": round(out["bfloat16"]["first_token_ms"] / out["float32"]["first_token_ms"], 2),
    }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dtype", action="store_true", help="also compare float32 with bfloat16")
    parser.add_argument("--dtype-name", default="float32", help="the dtype of the single-stream parts")
    parser.add_argument("--rows", default="8", help="batch sizes of the batched parts, e.g. 8,16")
    parser.add_argument("--part", choices=("raw", "unbatched", "batched"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rows = [int(n) for n in args.rows.split(",")]
    if args.part:  # a child of `single`: one JSON line on stdout
        print(json.dumps(part(args.part, args.new_tokens, args.runs, rows, args.dtype_name)))
        return {}
    result = {"load_before": load_snapshot(), "single": single(args.new_tokens, args.runs, rows, args.dtype_name)}
    if args.dtype:
        result["dtype"] = dtype_comparison(args.new_tokens, args.runs)
    result["load_after"] = load_snapshot()
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "inference.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
