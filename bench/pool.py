"""Runner processes and the model pool: what streaming through a runner costs, and several models at once.

Part of the suite (`python -m bench --only pool`); runs alone too:

    .venv/bin/python -m bench.pool [--new-tokens 32] [--minutes 1]

1. `runner_overhead`: one stream on the OpenVINO provider in this process against the same
   model in its runner process (`RunnerProvider`), alternating run by run: tokens/s and time
   to first token. The targets: ≤ 5 % slower, ≤ 10 ms more to the first token.
2. `pool`: a live llmsite whose MODELS_DIR holds the packaged model and copies of it under
   other names (links to the same files: each still loads in a runner of its own).
   - 8 streaming clients on one model, then 4 + 4 on two models at once: aggregate tokens/s;
   - unload and reload: a staff unload, then the first request (load + answer) against a warm one;
   - LLM_MAX_LOADED_MODELS=1: requests alternating between two models all succeed;
   - LLM_MEMORY_BUDGET_MB: three models taking turns for `minutes`; the runners' memory sampled
     every half second stays under the budget (the server's own memory is the fixed overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.common import MODEL, MODEL_DIR, RESULTS, load_snapshot, rss_tree_mib, story_prompt
from bench.live import LiveSite
from bench.serving import one_request, sweep_level

COPIES = ("SmolLM2-copy-a", "SmolLM2-copy-b")


def runner_overhead(new_tokens: int, runs: int) -> dict:
    """One stream in process against through a runner: same model, same requests, alternating."""
    from inference.providers.base import GenerationRequest, SamplingParams, TextDelta
    from inference.providers.local import LocalOptions, build_local
    from inference.runners.client import RunnerProvider

    options = LocalOptions(model=MODEL, folder=str(MODEL_DIR), device="cpu")
    inline, runner = build_local(options), RunnerProvider(options)
    inline.load()
    runner.load()

    async def once(provider, index: int) -> tuple[float, float]:
        request = GenerationRequest(prompt=story_prompt(index), sampling=SamplingParams(max_new_tokens=new_tokens))
        started = time.perf_counter()
        first = None
        async for event in provider.stream(request):
            if isinstance(event, TextDelta) and first is None:
                first = time.perf_counter()
        return event.usage.completion_tokens / (time.perf_counter() - started), (first - started) * 1000

    async def measure() -> dict:
        rates: dict[str, list[tuple[float, float]]] = {"in_process": [], "runner": []}
        await once(inline, 0)
        await once(runner, 0)
        for run in range(runs):
            rates["in_process"].append(await once(inline, run + 1))
            rates["runner"].append(await once(runner, run + 1))
        return {
            name: {
                "tok_s": round(statistics.median(r[0] for r in values), 1),
                "ttft_ms": round(statistics.median(r[1] for r in values), 1),
            }
            for name, values in rates.items()
        }

    try:
        result = asyncio.run(measure())
    finally:
        inline.close()
        runner.close()
    result["tok_s_ratio"] = round(result["runner"]["tok_s"] / result["in_process"]["tok_s"], 3)
    result["ttft_added_ms"] = round(result["runner"]["ttft_ms"] - result["in_process"]["ttft_ms"], 1)
    return result


def _models_dir(root: Path) -> Path:
    """MODEL and its copies: folders of links to the same files (weights, tokenizer, OpenVINO export)."""
    models = root / "models"
    models.mkdir()
    (models / MODEL).symlink_to(MODEL_DIR)
    for name in COPIES:
        copy = models / name
        copy.mkdir()
        for item in MODEL_DIR.iterdir():
            (copy / item.name).symlink_to(item)
    return models


async def _mixed(url: str, headers: dict, groups: list[tuple[str, int]], new_tokens: int, rounds: int) -> dict:
    started = time.perf_counter()
    levels = await asyncio.gather(*(sweep_level(url, headers, m, n, rounds, new_tokens) for m, n in groups))
    duration = time.perf_counter() - started
    tokens = sum(level["output_tokens"] for level in levels)
    return {"groups": [[m, n] for m, n in groups], "output_token_throughput": round(tokens / duration, 1)}


def _ask(site: LiveSite, model: str, new_tokens: int = 8, index: int = 0) -> float:
    with site.client(timeout=600) as http:
        started = time.perf_counter()
        response = http.post(
            "/api/v1/predict", json={"prompt": story_prompt(index), "model": model, "max_new_tokens": new_tokens}
        )
        response.raise_for_status()
        return (time.perf_counter() - started) * 1000


def pool(new_tokens: int, rounds: int, minutes: float) -> dict:
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="llmsite-pool-") as tmp:
        models = _models_dir(Path(tmp))
        with LiveSite(LLM_MODEL=MODEL, MODELS_DIR=str(models), LLM_MAX_LOADED_MODELS="3") as site:
            headers = {"Authorization": f"Bearer {site.token}"}
            copy = COPIES[0]
            for model in (MODEL, copy):  # load both and warm them
                asyncio.run(_warm(site.url, headers, model))
            one = asyncio.run(_mixed(site.url, headers, [(MODEL, 8)], new_tokens, rounds))
            two = asyncio.run(_mixed(site.url, headers, [(MODEL, 4), (copy, 4)], new_tokens, rounds))
            result["one_model_8_clients"] = one
            result["two_models_4_plus_4_clients"] = two
            result["two_models_ratio"] = round(two["output_token_throughput"] / one["output_token_throughput"], 3)
            warm = statistics.median(_ask(site, copy, index=i) for i in range(3))
            with site.client() as http:
                started = time.perf_counter()
                http.post(f"/api/v1/models/{copy}/unload").raise_for_status()
                unload_ms = (time.perf_counter() - started) * 1000
            cold = _ask(site, copy, index=9)
            result["unload_reload"] = {
                "unload_request_ms": round(unload_ms, 1),
                "first_request_after_unload_ms": round(cold, 1),
                "warm_request_ms": round(warm, 1),
                "reload_cost_ms": round(cold - warm, 1),
            }
            runner_mib = rss_tree_mib(site.server.pid)["runners"] / 2
        with LiveSite(LLM_MODEL=MODEL, MODELS_DIR=str(models), LLM_MAX_LOADED_MODELS="1") as site:
            order = [MODEL, copy] * 3
            answered = 0
            for index, model in enumerate(order):
                _ask(site, model, index=index)
                answered += 1
            result["one_loaded_alternating"] = {"requests": len(order), "answered": answered}
        budget = int(runner_mib * 2.5)  # room for two runners, not three
        with LiveSite(
            LLM_MODEL=MODEL, MODELS_DIR=str(models), LLM_MEMORY_BUDGET_MB=str(budget), LLM_MAX_LOADED_MODELS="0"
        ) as site:
            result["budget"] = _budget_run(site, [MODEL, *COPIES], budget, minutes)
    return result


async def _warm(url: str, headers: dict, model: str) -> None:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as http:
        await one_request(http, model, "Say hello.", 8)


def _budget_run(site: LiveSite, models: list[str], budget: int, minutes: float) -> dict:
    samples: list[dict] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append(rss_tree_mib(site.server.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ends = time.monotonic() + minutes * 60
    requests = failures = 0
    index = 0
    while time.monotonic() < ends:
        try:
            _ask(site, models[index % len(models)], index=index)
        except httpx.HTTPError:
            failures += 1
        requests += 1
        index += 1
    stop.set()
    sampler.join()
    return {
        "budget_mb": budget,
        "minutes": minutes,
        "requests": requests,
        "failures": failures,
        "max_runners_mib": max(s["runners"] for s in samples),
        "max_server_mib": max(s["server"] for s in samples),
        "max_total_mib": max(s["total"] for s in samples),
        "within_budget": max(s["runners"] for s in samples) <= budget,
    }


def measure(new_tokens: int, runs: int, rounds: int, minutes: float) -> dict:
    return {
        "load_before": load_snapshot(),
        "runner": runner_overhead(new_tokens, runs),
        "pool": pool(new_tokens, rounds, minutes),
    }


def markdown(result: dict) -> str:
    runner, pooled = result["runner"], result["pool"]
    reload = pooled["unload_reload"]
    budget = pooled["budget"]
    return "\n".join(
        [
            "| one stream, OpenVINO fp32 | tok/s | TTFT (ms) |",
            "|---|---:|---:|",
            f"| in the web process | {runner['in_process']['tok_s']} | {runner['in_process']['ttft_ms']} |",
            f"| in its runner process | {runner['runner']['tok_s']} | {runner['runner']['ttft_ms']} |",
            "",
            f"Two models at once (4 + 4 clients): {pooled['two_models_4_plus_4_clients']['output_token_throughput']} "
            f"tok/s against {pooled['one_model_8_clients']['output_token_throughput']} on one model with 8 "
            f"({pooled['two_models_ratio']:.2f}x). Unload {reload['unload_request_ms']:.0f} ms; the first request "
            f"after it {reload['first_request_after_unload_ms']:.0f} ms against {reload['warm_request_ms']:.0f} ms "
            f"warm (reload {reload['reload_cost_ms']:.0f} ms). With one model loaded at a time, "
            f"{pooled['one_loaded_alternating']['answered']}/{pooled['one_loaded_alternating']['requests']} "
            f"alternating requests answered. Budget {budget['budget_mb']} MB, three models for "
            f"{budget['minutes']} min ({budget['requests']} requests, {budget['failures']} failed): runners peaked "
            f"at {budget['max_runners_mib']:.0f} MiB, the server at {budget['max_server_mib']:.0f} MiB.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=1.0)
    args = parser.parse_args(argv)
    result = measure(args.new_tokens, args.runs, args.rounds, args.minutes)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pool.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
