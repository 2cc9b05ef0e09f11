"""What constrained decoding costs: tokens per second with a JSON schema against free text, per engine.

Part of the suite (`python -m bench --only structured`); runs alone too:

    .venv/bin/python -m bench.structured [--tokens 96] [--rounds 3] [--clients 8]

Each local engine in this process, on the default model (float32): OpenVINO GenAI (its own
structured output, xgrammar) and transformers with the batching scheduler (llguidance, row by row).
For each: one stream, then `clients` concurrent requests (the scheduler batches them), free and
constrained alternating round by round so outside load hits both alike. Both kinds generate
exactly `tokens` tokens: the schema asks for a long array (its items outlast the limit) and the
free prompt asks for a long story, each ending by the token limit, so the ratio compares the same
work per token. Reported: output tokens per second (median over rounds) and the ratio
constrained / free, with each round's ratio beside it. Target: the ratio >= 0.8, one stream and
`clients` at once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import MODEL, MODEL_DIR, RESULTS, load_snapshot
from inference.providers.base import GenerationRequest, Message, SamplingParams
from inference.providers.constraints import ResponseFormat

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "facts": {
            "type": "array",
            "minItems": 200,  # longer than any run's token limit: every constrained run ends by the limit
            "items": {
                "type": "object",
                "properties": {"topic": {"type": "string", "maxLength": 30}, "year": {"type": "integer"}},
                "required": ["topic", "year"],
            },
        },
    },
    "required": ["title", "facts"],
}
SHAPE = ResponseFormat.parse({"type": "json_schema", "json_schema": {"name": "facts", "schema": SCHEMA}})
FREE = "Write a very long story about a lighthouse keeper, with many chapters."
SHAPED = "List many facts about the history of computing, as JSON."


def _request(index: int, tokens: int, shaped: bool) -> GenerationRequest:
    prompt = SHAPED if shaped else FREE
    return GenerationRequest(
        messages=(Message("user", f"{prompt} ({index})"),),
        sampling=SamplingParams(max_new_tokens=tokens, temperature=0),
        response_format=SHAPE if shaped else None,
    )


def _burst(provider, clients: int, tokens: int, shaped: bool) -> dict:
    requests = [_request(i, tokens, shaped) for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        completions = list(pool.map(provider.generate, requests))
    seconds = time.perf_counter() - started
    produced = sum(c.usage.completion_tokens for c in completions)
    if shaped:  # what came out is the schema's prefix, cut by the token limit
        assert all(c.text.startswith('{"title"') or c.text.lstrip().startswith("{") for c in completions)
    return {"tok_s": produced / seconds, "tokens": produced, "reasons": sorted({c.finish_reason for c in completions})}


def _engine(name: str):
    if name == "openvino":
        from inference.providers.openvino import OpenVINOProvider, is_exported

        if not is_exported(MODEL_DIR, "fp32"):
            return None
        provider = OpenVINOProvider(MODEL, MODEL_DIR, precision="fp32")
    else:
        from inference.providers.hf import HFProvider

        provider = HFProvider(MODEL, MODEL_DIR, device="cpu", dtype="float32", batching=True)
    provider.load()
    return provider


def measure(tokens: int = 96, rounds: int = 3, clients: int = 8) -> dict:
    result: dict = {"model": MODEL, "tokens": tokens, "rounds": rounds, "clients": clients, "engines": {}}
    result["load_before"] = load_snapshot()
    for name in ("openvino", "transformers"):
        provider = _engine(name)
        if provider is None:
            result["engines"][name] = {"skipped": "no OpenVINO export (manage.py prepare_models)"}
            continue
        try:
            for shaped in (False, True):  # warm-up: compile paths, the grammar vocabulary
                _burst(provider, 1, 8, shaped)
            out: dict = {}
            for level in (1, clients):
                runs: dict[str, list[float]] = {"free": [], "json_schema": []}
                for index in range(rounds):
                    order = (False, True) if index % 2 == 0 else (True, False)
                    for shaped in order:
                        burst = _burst(provider, level, tokens, shaped)
                        runs["json_schema" if shaped else "free"].append(burst["tok_s"])
                free, shaped_rate = statistics.median(runs["free"]), statistics.median(runs["json_schema"])
                out[str(level)] = {
                    "free_tok_s": round(free, 1),
                    "json_schema_tok_s": round(shaped_rate, 1),
                    "ratio": round(shaped_rate / free, 3),
                    "round_ratios": [round(s / f, 3) for f, s in zip(runs["free"], runs["json_schema"], strict=True)],
                }
                print(f"[structured] {name} x{level}: {out[str(level)]}", flush=True)
            result["engines"][name] = out
        finally:
            provider.close()
    result["load_after"] = load_snapshot()
    return result


def markdown(result: dict) -> str:
    clients = result["clients"]
    lines = [
        "| engine | clients | free tok/s | JSON schema tok/s | ratio (target >= 0.8) | per round |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, out in result["engines"].items():
        if "skipped" in out:
            lines.append(f"| {name} | skipped: {out['skipped']} | | | | |")
            continue
        for level in ("1", str(clients)):
            row = out[level]
            lines.append(
                f"| {name} | {level} | {row['free_tok_s']} | {row['json_schema_tok_s']} | {row['ratio']} | "
                f"{', '.join(str(r) for r in row['round_ratios'])} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    result = measure(args.tokens, args.rounds, args.clients)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "structured.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "structured.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
