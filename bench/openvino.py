"""OpenVINO GenAI on its own: the default model at fp32, int8 and int4, on the raw library, one process each.

    .venv/bin/python -m bench.openvino [--new-tokens 32] [--runs 2] [--levels 8,16] [--precisions fp32,int8,int4]

Writes bench/results/openvino.json and prints a markdown table. For each precision:
- the export (`inference.export`, optimum-intel in a subprocess) is made first when it is missing,
  or the precision is skipped with the reason when the exporter is not installed;
- a child process (`--child PRECISION`) loads `openvino_genai.ContinuousBatchingPipeline` with the
  scheduler config and properties `OpenVINOProvider.load` uses — the library itself, not our
  provider, so this is the ceiling the provider works towards — and measures one greedy stream
  (tokens/s, time to first token), `levels` streams added at once (aggregate tokens/s, TTFT p50),
  and the perplexity of training/data/knowledge.txt. A process per precision keeps each peak RSS
  (VmHWM) its own: the high-water mark never comes down, so a second model in one process would hide it.
  The token ids come from this process on the child's stdin, so the child never imports torch.
Every request is forced to its full length (ignore_eos), so all runs count the same tokens.
The transformers float32 perplexity of the same text is measured here once, as the baseline
(docs/performance.md: 58.15). Timings move with other load on the machine: load averages are recorded.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import MODEL, MODEL_DIR, RESULTS, ROOT, load_snapshot, peak_rss_mib, percentile, story_prompt
from inference.providers.openvino import EXACT_PROPERTIES, PRECISIONS, is_exported, openvino_folder

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: a missing file must fail, not download

HELD_OUT = ROOT / "training" / "data" / "knowledge.txt"
PERPLEXITY_WINDOW = 512  # tokens per forward pass; the KV state carries over, so the result equals one pass
CHILD_TIMEOUT_SECONDS = 900
_request_ids = itertools.count()


# --- the pipeline as OpenVINOProvider.load builds it ------------------------------------------
def properties(precision: str) -> dict:
    """The compile properties OpenVINOProvider uses: exact f32 for fp32 only, threads unpinned."""
    return {**(EXACT_PROPERTIES if precision == "fp32" else {}), "ENABLE_CPU_PINNING": "NO"}


def scheduler_config() -> Any:
    """The provider's scheduler settings with its default limits (16 rows, 2048 batched tokens, 1 GB cache)."""
    import openvino_genai

    config = openvino_genai.SchedulerConfig()
    config.cache_size = 1
    config.max_num_seqs = 16
    config.max_num_batched_tokens = 2048
    config.dynamic_split_fuse = True
    config.enable_prefix_caching = False
    return config


def load_pipeline(ov_folder: Path, precision: str) -> Any:
    import openvino_genai

    return openvino_genai.ContinuousBatchingPipeline(str(ov_folder), scheduler_config(), "CPU", properties(precision))


def greedy_config(new_tokens: int) -> Any:
    """Greedy, exactly `new_tokens` tokens: ignore_eos where the library has it, else min_new_tokens."""
    import openvino_genai

    config = openvino_genai.GenerationConfig()
    config.do_sample = False
    config.max_new_tokens = new_tokens
    if hasattr(config, "ignore_eos"):
        config.ignore_eos = True
    else:
        config.min_new_tokens = new_tokens
    return config


def load_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL_DIR)


def prompt_ids(tokenizer: Any, index: int) -> list[int]:
    """The ids of story prompt `index` under the chat template, as the site renders a one-message chat."""
    messages = [{"role": "user", "content": story_prompt(index)}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# --- driving the pipeline ------------------------------------------------------------------------
@dataclass
class Stream:
    """One request: its handle (kept referenced: a dropped handle drops the request) and its timings."""

    handle: Any
    added: float
    first_token: float | None = None
    tokens: int = 0
    finished: float | None = None
    ids: list[int] = field(default_factory=list)


def _read(stream: Stream, now: float) -> None:
    """Take what the handle has; read() only when can_read(), since an empty read blocks."""
    while stream.handle.can_read():
        for output in stream.handle.read().values():
            stream.ids.extend(output.generated_ids)
    if stream.ids and stream.first_token is None:
        stream.first_token = now
    stream.tokens = len(stream.ids)


def drive(pipeline: Any, prompts: list[list[int]], config: Any) -> list[Stream]:
    """Add every prompt at once, step until all are done; each stream's first-token and finish times."""
    import openvino

    started = time.perf_counter()  # every stream's clock starts when the first is added, as clients arriving at once
    streams = [
        Stream(
            pipeline.add_request(next(_request_ids), openvino.Tensor(np.array([ids], dtype=np.int64)), config), started
        )
        for ids in prompts
    ]
    while pipeline.has_non_finished_requests():
        pipeline.step()
        now = time.perf_counter()
        for stream in streams:
            if stream.finished is None:
                _read(stream, now)
                if stream.tokens >= config.max_new_tokens:
                    stream.finished = now
    now = time.perf_counter()
    for stream in streams:
        _read(stream, now)
        stream.finished = stream.finished or now
    return streams


def single_stream(pipeline: Any, ids: list[int], config: Any, runs: int) -> dict:
    """Median tokens/s and TTFT of one stream over `runs` runs after a warm-up."""
    drive(pipeline, [ids], config)  # warm-up: the first request after loading pays for compilation
    rates, ttfts, counts = [], [], []
    for _ in range(runs):
        (stream,) = drive(pipeline, [ids], config)
        rates.append(stream.tokens / (stream.finished - stream.added))
        ttfts.append((stream.first_token - stream.added) * 1000)
        counts.append(stream.tokens)
    return {
        "tok_s": round(statistics.median(rates), 2),
        "ttft_ms": round(statistics.median(ttfts), 1),
        "runs_tok_s": [round(rate, 2) for rate in rates],
        "tokens": counts,
    }


def concurrent(pipeline: Any, prompts: list[list[int]], clients: int, config: Any) -> dict:
    """`clients` different prompts added at once: aggregate output tokens/s and TTFT p50/p95."""
    streams = drive(pipeline, prompts[:clients], config)
    elapsed = max(s.finished for s in streams) - streams[0].added
    ttfts = [(s.first_token - s.added) * 1000 for s in streams]
    return {
        "clients": clients,
        "tok_s": round(sum(s.tokens for s in streams) / elapsed, 2),
        "ttft_p50_ms": round(percentile(ttfts, 0.5), 1),
        "ttft_p95_ms": round(percentile(ttfts, 0.95), 1),
        "tokens": sum(s.tokens for s in streams),
    }


# --- perplexity ------------------------------------------------------------------------------------
def held_out_ids(tokenizer: Any) -> list[int]:
    """The whole held-out file as one sequence (1,438 tokens), as docs/performance.md measured it."""
    return tokenizer(HELD_OUT.read_text())["input_ids"]


def _nll_sum(logits: np.ndarray, targets: list[int]) -> float:
    """Sum of -log p(target) over rows of `logits` (float64 log-softmax, so int4's spread logits stay exact)."""
    rows = logits.astype(np.float64)
    top = rows.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
    return float((log_z - rows[np.arange(len(targets)), targets]).sum())


def openvino_perplexity(ov_folder: Path, precision: str, ids: list[int]) -> float:
    """exp(mean NLL of tokens 1..n given the ones before), from the IR's own logits.

    The genai pipeline hands out sampled tokens, not logits, so the stateful IR is compiled with
    the same properties and fed in windows; its KV state carries each window's context to the next.
    """
    import openvino

    core = openvino.Core()
    compiled = core.compile_model(core.read_model(ov_folder / "openvino_model.xml"), "CPU", properties(precision))
    request = compiled.create_infer_request()
    request.reset_state()
    total, count = 0.0, 0
    for start in range(0, len(ids), PERPLEXITY_WINDOW):
        window = ids[start : start + PERPLEXITY_WINDOW]
        end = start + len(window)
        request.infer(
            {
                "input_ids": np.array([window], dtype=np.int64),
                "attention_mask": np.ones((1, end), dtype=np.int64),
                "position_ids": np.arange(start, end, dtype=np.int64)[None, :],
                "beam_idx": np.zeros(1, dtype=np.int32),
            }
        )
        logits = request.get_tensor("logits").data[0]
        if logits.shape[0] != len(window):
            raise RuntimeError(f"the IR returned logits for {logits.shape[0]} of {len(window)} positions")
        targets = ids[start + 1 : end + 1]  # position i predicts token i+1; the last window has one fewer
        total += _nll_sum(logits[: len(targets)], targets)
        count += len(targets)
    return math.exp(total / count)


def transformers_perplexity() -> float:
    """The baseline: transformers float32, the whole text in one forward pass, loss over tokens 1..n."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32)
    model.eval()
    input_ids = torch.tensor([held_out_ids(tokenizer)])
    with torch.inference_mode():
        loss = model(input_ids=input_ids, labels=input_ids).loss.item()
    return math.exp(loss)


# --- one precision in its own process ----------------------------------------------------------
def token_ids(clients: int) -> dict:
    """The prompts' ids (as many as the most clients) and the held-out text's, tokenized here for the children.

    A child that loaded the transformers tokenizer would import torch (~350 MiB of resident
    memory) and count it in its peak RSS; handed the ids, it imports OpenVINO alone.
    """
    tokenizer = load_tokenizer()
    return {
        "prompts": [prompt_ids(tokenizer, i) for i in range(max(1, clients))],
        "held_out": held_out_ids(tokenizer),
    }


def child(precision: str, new_tokens: int, runs: int, levels: list[int], ids: dict) -> dict:
    """Everything measured for one precision; runs in a fresh process (see `run_child`)."""
    ov_folder = openvino_folder(MODEL_DIR, precision)
    prompts = ids["prompts"]
    started = time.perf_counter()
    pipeline = load_pipeline(ov_folder, precision)
    load_s = time.perf_counter() - started
    config = greedy_config(new_tokens)
    out: dict = {"load_s": round(load_s, 1), "single": single_stream(pipeline, prompts[0], config, runs)}
    out["levels"] = [concurrent(pipeline, prompts, clients, config) for clients in levels]
    out["peak_rss_mib"] = peak_rss_mib(os.getpid())  # before perplexity compiles a second copy of the weights
    del pipeline
    gc.collect()
    out["perplexity"] = round(openvino_perplexity(ov_folder, precision, ids["held_out"]), 2)
    out["peak_rss_with_perplexity_mib"] = peak_rss_mib(os.getpid())
    return out


def run_child(precision: str, new_tokens: int, runs: int, levels: list[int], ids: dict) -> dict:
    """`child` in a fresh interpreter, the token ids on its stdin, its result the last JSON line it prints."""
    command = [sys.executable, "-m", "bench.openvino", "--child", precision, "--new-tokens", str(new_tokens)]
    command += ["--runs", str(runs), "--levels", ",".join(map(str, levels))]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=environment,
        input=json.dumps(ids),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"bench.openvino --child {precision} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def ensure_export(precision: str) -> dict:
    """{} when the export is there; {"export_s"} when made now; {"skipped": why} when it cannot be made."""
    if is_exported(MODEL_DIR, precision):
        return {}
    from inference.export import ExportFailed, export_openvino, exporter_problem

    problem = exporter_problem()
    if problem:
        return {"skipped": problem}
    print(f"[openvino] exporting {MODEL} to {precision} (once) ...", flush=True)
    started = time.perf_counter()
    try:
        export_openvino(MODEL_DIR, precision)
    except ExportFailed as exc:
        return {"skipped": str(exc)}
    return {"export_s": round(time.perf_counter() - started, 1)}


def measure(new_tokens: int, runs: int, levels: list[int], precisions: list[str]) -> dict:
    """Each precision measured in a child process of its own, then the transformers baseline here."""
    result: dict = {"model": MODEL, "new_tokens": new_tokens, "runs": runs, "levels": levels, "precisions": {}}
    result["loadavg"] = load_snapshot()
    ids = token_ids(max([1, *levels]))
    for precision in precisions:
        out = ensure_export(precision)
        if "skipped" not in out:
            print(f"[openvino] {precision} (load {os.getloadavg()[0]:.2f})", flush=True)
            out.update(run_child(precision, new_tokens, runs, levels, ids))
        result["precisions"][precision] = out
    print("[openvino] transformers fp32 perplexity", flush=True)
    result["transformers_perplexity"] = round(transformers_perplexity(), 2)
    result["loadavg_after"] = load_snapshot()
    return result


# --- the table -------------------------------------------------------------------------------------
def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    """precision | 1 stream tok/s | TTFT ms | N clients tok/s ... | perplexity | peak RSS MiB."""
    levels = result["levels"]
    header = ["precision", "1 stream tok/s", "TTFT ms", *(f"{n} clients tok/s" for n in levels)]
    header += ["perplexity", "peak RSS MiB"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for precision, out in result["precisions"].items():
        if "skipped" in out:
            lines.append(f"| {precision} | skipped: {out['skipped'].splitlines()[0]} |" + " |" * (len(header) - 2))
            continue
        by_clients = {level["clients"]: level for level in out["levels"]}
        cells = [precision, _cell(out["single"]["tok_s"]), _cell(out["single"]["ttft_ms"], 0)]
        cells += [_cell(by_clients.get(n, {}).get("tok_s")) for n in levels]
        cells += [_cell(out["perplexity"], 2), _cell(out["peak_rss_mib"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    baseline = ["transformers fp32 (reference)", "-", "-", *("-" for _ in levels)]
    baseline += [_cell(result["transformers_perplexity"], 2), "-"]
    lines.append("| " + " | ".join(baseline) + " |")
    exports = ", ".join(f"{p} {o['export_s']} s" for p, o in result["precisions"].items() if "export_s" in o)
    load = result["loadavg"]["loadavg"]
    lines += [
        "",
        f"{MODEL}, raw openvino_genai ContinuousBatchingPipeline on the CPU, greedy, {result['new_tokens']} new "
        f"tokens per request, median of {result['runs']} runs; perplexity on {HELD_OUT.name}. "
        f"Load average at the start {load[0]}, {load[1]}, {load[2]}; at the end "
        f"{result['loadavg_after']['loadavg'][0]}." + (f" Exported now: {exports}." if exports else ""),
    ]
    return "\n".join(lines) + "\n"


def _numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n]


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(prog="python -m bench.openvino", description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--levels", default="8,16", help="concurrent streams, e.g. 8,16")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated, of fp32,int8,int4")
    parser.add_argument("--child", choices=PRECISIONS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        ids = json.load(sys.stdin)
        print(json.dumps(child(args.child, args.new_tokens, args.runs, _numbers(args.levels), ids)), flush=True)
        return None
    precisions = [p for p in args.precisions.split(",") if p]
    unknown = set(precisions) - set(PRECISIONS)
    if unknown:
        parser.error(f"unknown precisions: {', '.join(sorted(unknown))}")
    result = measure(args.new_tokens, args.runs, _numbers(args.levels), precisions)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openvino.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n" + markdown(result))
    print(f"wrote {(RESULTS / 'openvino.json').relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    main()
