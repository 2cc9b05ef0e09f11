"""The benchmark suite: llmsite against raw transformers and a peer server, in one run.

    .venv/bin/python -m bench [--quick] [--only SECTION,...]      (or: make bench, make bench-quick)

Sections, in order (each on the default model, SmolLM2-135M-Instruct, CPU, float32):
- `local`    raw `model.generate` single stream (the limit), the provider one by one and batched,
             static batched `generate` (the ceiling for batching) — in this process;
- `openvino` raw OpenVINO GenAI in process, per precision (fp32, int8, int4; each exported once if
             missing): one stream, 8 and 16 at once, perplexity on held-out text, peak RSS (bench/openvino.py);
- `llmsite`  a live daphne as shipped (LLM_ENGINE=auto: OpenVINO fp32 on the CPU, in a runner process):
             N concurrent streaming clients on `/v1/chat/completions` (N = 1, 4, 8, 16), then cache-hit
             latency and throughput against `/healthz` (a trivial JSON view on the same stack); peak
             memory of the server and its runner;
- `transformers` the same sweep on the transformers engine with its batching scheduler;
- `unbatched` the same sweep on the transformers engine with LLM_BATCHING=off;
- `peer`     the same sweep against `transformers serve --continuous-batching` on the same weights;
- `pool`     a runner against the same model in process; two models at once; unload and reload;
             one model loaded at a time; the memory budget over minutes (bench/pool.py);
- `encoder`  the embedding encoder on torch against OpenVINO, alone and beside generation (bench/encoder.py);
- `usage`    cached completions per second with the usage ledger and limits on against off, two live
             daphnes side by side, alternating; the ledger counts what the clients got (bench/usage.py);
- `structured` tok/s with a JSON schema against free text, each local engine, one stream and 8 at
             once (bench/structured.py);
- `dtype`    float32 against bfloat16 (speed alone and batched, prefill, answers) — full run only;
- `streaming`, `embeddings` the older focused benchmarks (SSE/WebSocket first-token overhead;
             encoder, FAISS and search) — full run only;
- `retrieval` recall@1/@5 and MRR of vector, keyword and hybrid search on a generated corpus
             (bench/retrieval.py) — full run only.
Writes bench/results/suite.json and bench/results/suite.md (the table the README shows);
a run with --only writes suite-<sections>.json/.md instead.
`--quick` (about 15 minutes on an idle 2-core machine) uses 32 new tokens, one request per client,
fewer levels for the unbatched and peer servers, and half a minute for the memory budget run.
Timings on a shared machine move with other load: every section records the load average;
compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import time

from bench import inference, serving
from bench.common import MODEL, RESULTS, load_snapshot, machine

QUICK = {"new_tokens": 32, "runs": 2, "rounds": 1, "levels": [1, 4, 8, 16], "few": [1, 8], "hits": 100}
FULL = {"new_tokens": 64, "runs": 3, "rounds": 3, "levels": [1, 4, 8, 16], "few": [1, 4, 8, 16], "hits": 300}
SECTIONS = (
    "local",
    "openvino",
    "llmsite",
    "transformers",
    "unbatched",
    "peer",
    "pool",
    "encoder",
    "usage",
    "structured",
    "dtype",
    "streaming",
    "embeddings",
    "retrieval",
)
QUICK_SECTIONS = (
    "local",
    "openvino",
    "llmsite",
    "transformers",
    "unbatched",
    "peer",
    "pool",
    "encoder",
    "usage",
    "structured",
)


def run(sections: list[str], plan: dict) -> dict:
    result: dict = {"model": MODEL, "machine": machine(), "plan": plan, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    timings: dict[str, float] = {}
    for name in sections:
        started = time.perf_counter()
        before = load_snapshot()
        print(f"[bench] {name} (load {before['loadavg']})", flush=True)
        if name == "local":
            out = inference.single(plan["new_tokens"], plan["runs"], [8] if plan["quick"] else [8, 16])
        elif name == "openvino":
            from bench import openvino

            out = openvino.measure(plan["new_tokens"], plan["runs"], [8, 16], ["fp32", "int8", "int4"])
        elif name == "pool":
            from bench import pool

            out = pool.measure(plan["new_tokens"], plan["runs"], plan["rounds"], 0.5 if plan["quick"] else 2.0)
        elif name == "encoder":
            from bench import encoder

            out = encoder.measure(plan["runs"])
        elif name == "usage":
            from bench import usage

            out = usage.measure(8, 4, 2) if plan["quick"] else usage.measure(15, 6, 3)
        elif name == "structured":
            from bench import structured

            out = structured.measure(plan["new_tokens"], plan["runs"] + 1, 8)
        elif name == "llmsite":
            out = serving.llmsite(True, plan["levels"], plan["rounds"], plan["new_tokens"], cache_hits=plan["hits"])
        elif name == "transformers":
            out = serving.llmsite(True, plan["levels"], plan["rounds"], plan["new_tokens"], engine="transformers")
        elif name == "unbatched":
            out = serving.llmsite(False, plan["few"], plan["rounds"], plan["new_tokens"], engine="transformers")
        elif name == "peer":
            out = serving.peer(plan["few"], plan["rounds"], plan["new_tokens"])
        elif name == "dtype":
            out = inference.dtype_comparison(plan["new_tokens"], plan["runs"])
        elif name == "streaming":
            from bench import streaming

            out = streaming.main(["--runs", "10"])
        elif name == "embeddings":
            from bench import embeddings

            out = embeddings.main([])
        elif name == "retrieval":
            from bench import retrieval

            out = retrieval.measure()
        out["load_before"], out["load_after"] = before, load_snapshot()
        result[name] = out
        timings[name] = round(time.perf_counter() - started, 1)
        gc.collect()
    result["seconds"] = timings
    result["targets"] = targets(result)
    return result


def _level(section: dict | None, clients: int) -> dict | None:
    for level in (section or {}).get("levels", ()):
        if level["clients"] == clients:
            return level
    return None


def targets(result: dict) -> list[dict]:
    """The issue's targets, each as {name, measured, goal, met}; None where a section did not run."""
    local, shipped = result.get("local"), result.get("llmsite")
    # The batching targets are the transformers engine's (its scheduler); the engine targets compare the two.
    site = result.get("transformers")
    off, peer = result.get("unbatched"), result.get("peer")
    one, eight = _level(site, 1), _level(site, 8)
    ov_one, ov_eight, ov_sixteen = _level(shipped, 1), _level(shipped, 8), _level(shipped, 16)
    rows = []

    def add(name: str, measured: float | None, goal: float, higher: bool = True) -> None:
        met = None if measured is None else (measured >= goal if higher else measured <= goal)
        value = None if measured is None else round(measured, 3)
        rows.append({"name": name, "measured": value, "goal": goal, "met": met, "higher": higher})

    raw = local["raw_generate"] if local else None

    def ratio(a: dict | None, b: dict | None, key: str = "output_token_throughput") -> float | None:
        return a[key] / b[key] if a and b else None

    raw_level = {"output_token_throughput": raw} if raw else None
    add("OpenVINO: HTTP single stream / raw transformers generate", ratio(ov_one, raw_level), 2.5)
    add("OpenVINO: 8 clients / transformers engine at 8", ratio(ov_eight, eight), 3.0)
    add("OpenVINO: 16 clients / transformers engine at 16", ratio(ov_sixteen, _level(site, 16)), 3.0)
    add(
        "OpenVINO: TTFT p50 at 8 clients / at 1 client",
        ov_eight["ttft_ms"]["p50"] / ov_one["ttft_ms"]["p50"] if ov_one and ov_eight else None,
        2.0,
        higher=False,
    )
    fp32 = ((result.get("openvino") or {}).get("precisions") or {}).get("fp32") or {}
    raw_ov = fp32.get("single")
    raw_ov8 = next((lv for lv in fp32.get("levels", ()) if lv["clients"] == 8), None)
    add(
        "OpenVINO: HTTP single stream / raw OpenVINO in process",
        ov_one["output_token_throughput"] / raw_ov["tok_s"] if ov_one and raw_ov else None,
        0.9,
    )
    add(
        "OpenVINO: TTFT over HTTP minus raw OpenVINO (ms)",
        ov_one["ttft_ms"]["p50"] - raw_ov["ttft_ms"] if ov_one and raw_ov else None,
        15,
        higher=False,
    )
    add(
        "OpenVINO: 8 clients over HTTP / raw OpenVINO batching at 8",
        ov_eight["output_token_throughput"] / raw_ov8["tok_s"] if ov_eight and raw_ov8 else None,
        0.8,
    )
    pooled = result.get("pool") or {}
    runner = pooled.get("runner")
    add("runner: one stream through the runner / in process", runner["tok_s_ratio"] if runner else None, 0.95)
    add("runner: time to first token added (ms)", runner["ttft_added_ms"] if runner else None, 10, higher=False)
    models = pooled.get("pool") or {}
    add("pool: two models 4 + 4 clients / one model 8 clients", models.get("two_models_ratio"), 0.8)
    budget = models.get("budget")
    add(
        "pool: runners' peak memory / LLM_MEMORY_BUDGET_MB",
        budget["max_runners_mib"] / budget["budget_mb"] if budget else None,
        1.0,
        higher=False,
    )
    metered = (result.get("usage") or {}).get("concurrent")
    add("usage: cached completions req/s, accounting on / off", metered["ratio"] if metered else None, 0.9)
    shaped = (result.get("structured") or {}).get("engines") or {}
    for engine in ("openvino", "transformers"):
        for level in ("1", "8"):
            row = (shaped.get(engine) or {}).get(level)
            add(f"{engine}: JSON schema / free tok/s, {level} at once", row["ratio"] if row else None, 0.8)
    add("transformers: HTTP single stream / raw generate", ratio(one, raw_level), 0.95)
    add(
        "8 clients aggregate / 1 client (batching on)",
        eight["output_token_throughput"] / one["output_token_throughput"] if one and eight else None,
        3.5,
    )
    static8 = (local or {}).get("static_batch_generate", {}).get(8)
    add(
        "8 clients aggregate / static generate batch 8",
        eight["output_token_throughput"] / static8 if eight and static8 else None,
        0.75,
    )
    peer8 = _level(peer, 8)
    add(
        "8 clients aggregate / peer server at 8",
        eight["output_token_throughput"] / peer8["output_token_throughput"] if eight and peer8 else None,
        1.5,
    )
    add(
        "TTFT p50 at 8 clients / at 1 client",
        eight["ttft_ms"]["p50"] / one["ttft_ms"]["p50"] if one and eight else None,
        2.0,
        higher=False,
    )
    add(
        "provider single stream, batching on / off",
        local["provider_batched"] / local["provider_unbatched"] if local else None,
        0.95,
    )
    off1 = _level(off, 1)
    add(
        "HTTP single stream, batching on / off",
        one["output_token_throughput"] / off1["output_token_throughput"] if one and off1 else None,
        0.95,
    )
    same = total = 0
    for clients in sorted({level["clients"] for level in (site or {}).get("levels", ())}):
        on_level, off_level = _level(site, clients), _level(off, clients)
        if on_level and off_level:
            for prompt, text in on_level["texts"].items():
                if prompt in off_level["texts"]:
                    total += 1
                    same += text == off_level["texts"][prompt]
    add("greedy answers identical with and without batching", same / total if total else None, 1.0)
    return rows


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    """The tables the README shows."""
    lines = [
        f"Model {result['model']}, {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"torch {result['machine']['torch']} with {result['machine']['torch_threads']} threads, float32; "
        f"{result['plan']['new_tokens']} new tokens per request, greedy; run {result['started']}.",
        "",
    ]
    local = result.get("local")
    one = {name: _level(result.get(name), 1) for name in ("llmsite", "transformers", "unbatched", "peer")}
    if local or any(one.values()):
        raw = local["raw_generate"] if local else None
        lines += ["| single stream | output tokens/s | vs raw generate |", "|---|---:|---:|"]
        rows = []
        if local:
            rows += [
                ("raw `model.generate`", local["raw_generate"]),
                ("`HFProvider.generate`, one by one", local["provider_unbatched"]),
                ("`HFProvider.generate`, batching scheduler", local["provider_batched"]),
            ]
        labels = {
            "llmsite": "HTTP, llmsite as shipped (OpenVINO fp32)",
            "transformers": "HTTP, llmsite on transformers (batching on)",
            "unbatched": "HTTP, llmsite on transformers (batching off)",
            "peer": "HTTP, transformers serve",
        }
        for name, level in one.items():
            if level:
                rows.append((labels[name], level["output_token_throughput"]))
        for label, value in rows:
            ratio = f"{value / raw:.2f}x" if raw else "-"
            lines.append(f"| {label} | {_fmt(value)} | {ratio} |")
        lines.append("")
    if local:
        static = local.get("static_batch_generate", {})
        scheduled = local.get("provider_batched_concurrent", {})
        cells = ", ".join(
            f"batch {rows}: static `generate` {_fmt(static[rows])} tok/s, scheduler {_fmt(scheduled.get(rows))} tok/s"
            for rows in static
        )
        lines += [f"In process, {cells}.", ""]
    header = (
        "| server | clients | request throughput (req/s) | output token throughput (tok/s) | "
        "TTFT p50 / p95 (ms) | TPOT mean / p50 (ms) | peak RSS (MiB) |"
    )
    lines += [header, "|---|---:|---:|---:|---:|---:|---:|"]
    names = {
        "llmsite": "llmsite, OpenVINO fp32",
        "transformers": "llmsite, transformers, batching on",
        "unbatched": "llmsite, transformers, batching off",
        "peer": "transformers serve (CB)",
    }
    for name, label in names.items():
        section = result.get(name)
        for level in (section or {}).get("levels", ()):
            lines.append(
                f"| {label} | {level['clients']} | {_fmt(level['request_throughput'], 2)} | "
                f"{_fmt(level['output_token_throughput'])} | {_fmt(level['ttft_ms']['p50'], 0)} / "
                f"{_fmt(level['ttft_ms']['p95'], 0)} | {_fmt(level['tpot_ms']['mean'], 0)} / "
                f"{_fmt(level['tpot_ms']['p50'], 0)} | {_fmt(section.get('peak_rss_mib'), 0)} |"
            )
    lines.append("")
    cache = (result.get("llmsite") or {}).get("cache")
    if cache:
        lines += [
            "| same stack, 1 client | p50 (ms) | p95 (ms) | 8 clients (req/s) |",
            "|---|---:|---:|---:|",
            f"| cache hit, `POST /api/v1/predict` | {_fmt(cache['cache_hit_ms']['p50'], 2)} | "
            f"{_fmt(cache['cache_hit_ms']['p95'], 2)} | {_fmt(cache['cache_hit_rps_8_clients'])} |",
            f"| trivial JSON view, `GET /healthz` | {_fmt(cache['healthz_ms']['p50'], 2)} | "
            f"{_fmt(cache['healthz_ms']['p95'], 2)} | {_fmt(cache['healthz_rps_8_clients'])} |",
            "",
        ]
    dtype = result.get("dtype")
    if dtype:
        lines += [
            "| dtype | one stream (tok/s) | first token (ms) | static batch 8 (tok/s) | fixed questions right |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in ("float32", "bfloat16"):
            d = dtype[name]
            lines.append(
                f"| {name} | {_fmt(d['single_tokens_per_s'])} | {_fmt(d['first_token_ms'], 0)} | "
                f"{_fmt(d['static_batch_8_tokens_per_s'])} | {d['quality_correct']} |"
            )
        cmp = dtype["bfloat16_vs_float32"]
        lines += [
            "",
            f"bfloat16 answers identical to float32: {cmp['identical_answers']} "
            f"(mean common prefix {cmp['mean_common_prefix_tokens']} tokens).",
            "",
        ]
    if result.get("openvino"):
        from bench import openvino

        lines += ["Raw OpenVINO GenAI in process, per precision:", "", openvino.markdown(result["openvino"]), ""]
    if result.get("pool"):
        from bench import pool

        lines += [pool.markdown(result["pool"]), ""]
    if result.get("encoder"):
        from bench import encoder

        lines += ["The embedding encoder, torch against OpenVINO:", "", encoder.markdown(result["encoder"]), ""]
    if result.get("usage"):
        from bench import usage

        lines += ["The cost of accounting (the usage ledger and limits):", "", usage.markdown(result["usage"]), ""]
    if result.get("structured"):
        from bench import structured

        lines += ["Structured output (constrained decoding):", "", structured.markdown(result["structured"]), ""]
    if result.get("retrieval"):
        from bench import retrieval

        lines += ["Retrieval quality (vector, keyword, hybrid):", "", retrieval.markdown(result["retrieval"]), ""]
    measured = [row for row in result["targets"] if row["measured"] is not None]
    if measured:
        lines += ["| target | measured | goal | met |", "|---|---:|---:|:---:|"]
    for row in measured:
        goal = ("≥ " if row.get("higher", True) else "≤ ") + f"{row['goal']}"
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(f"| {row['name']} | {_fmt(row['measured'], 2)} | {goal} | {met} |")
    loads = [
        f"{name} {result[name]['load_before']['loadavg'][0]}"
        for name in SECTIONS
        if isinstance(result.get(name), dict) and "load_before" in result[name]
    ]
    lines += ["", f"Load average (1 min) at the start of each section: {', '.join(loads)}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under 2 minutes")
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--new-tokens", type=int, help="override the plan's new tokens per request")
    parser.add_argument("--levels", help="override the concurrency levels, e.g. 1,8")
    args = parser.parse_args(argv)
    plan = dict(QUICK if args.quick else FULL, quick=args.quick)
    if args.new_tokens:
        plan["new_tokens"] = args.new_tokens
    if args.levels:
        plan["levels"] = plan["few"] = [int(n) for n in args.levels.split(",")]
    sections = args.only.split(",") if args.only else list(QUICK_SECTIONS if args.quick else SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    result = run(sections, plan)
    table = markdown(result)
    # A partial run (--only) keeps the last whole run's files, which the README quotes.
    name = "suite-" + "-".join(sections) if args.only else "suite"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(table)
    print("\n" + table)
    print(f"wrote {RESULTS / name}.json and .md in {sum(result['seconds'].values()):.0f} s")


if __name__ == "__main__":
    main()
