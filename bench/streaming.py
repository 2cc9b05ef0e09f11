"""Time to first token through SSE and the WebSocket versus raw transformers, and concurrent streams.

    .venv/bin/python bench/streaming.py [--runs 20] [--concurrent 4] [--new-tokens 48]

In one run on the default model (SmolLM2-135M-Instruct, prepared under data/models):
1. raw: `model.generate(max_new_tokens=1)` in this process on the same weights and chat-templated
   input ids (prefill + the first token: the floor for any server);
2. SSE: `POST /api/v1/predict` with `stream: true` on a live daphne, from sending the request
   to receiving the first `data: {"delta"}` frame;
3. WebSocket: `/ws/v1/chat/`, from sending `generate` to the first `token` message;
alternating run by run (the response cache cleared before each, so every run generates), then
`--concurrent` WebSocket streams started together: each stream's first-token time, tokens/s,
and whether every stream received tokens before any stream finished (they interleave instead
of queueing). Prints a table and writes bench/results/streaming.json. Compare the overheads
(server minus raw) from the same run, not absolute numbers across runs or machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # run as a script, bench/ would shadow the `inference` app
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
import websockets  # noqa: E402

from bench.live import LiveSite, percentile  # noqa: E402

MODEL = "SmolLM2-135M-Instruct"
MESSAGES = [{"role": "user", "content": "Tell me a short story about a lighthouse keeper and a storm."}]
RESULTS = ROOT / "bench" / "results" / "streaming.json"


def raw_first_token(folder: Path):
    """A callable timing prefill + first token with plain transformers on the served weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True)

    def once() -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(**ids, max_new_tokens=1, do_sample=False)
        return (time.perf_counter() - started) * 1000

    return once


async def sse_first_token(http: httpx.AsyncClient, new_tokens: int) -> float:
    body = {"messages": MESSAGES, "max_new_tokens": new_tokens, "temperature": 0, "stream": True}
    started = time.perf_counter()
    first = None
    async with http.stream("POST", "/api/v1/predict", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: ") and '"delta"' in line:
                first = (time.perf_counter() - started) * 1000
    assert first is not None, "no delta arrived"
    return first


async def ws_first_token(socket, new_tokens: int) -> float:
    await socket.send(
        json.dumps({"type": "generate", "messages": MESSAGES, "max_new_tokens": new_tokens, "temperature": 0})
    )
    started = time.perf_counter()
    first = None
    while True:
        message = json.loads(await socket.recv())
        if message["type"] == "token" and first is None:
            first = (time.perf_counter() - started) * 1000
        elif message["type"] == "done":
            break
        elif message["type"] == "error":
            raise RuntimeError(message)
    assert first is not None, "no token arrived"
    return first


async def open_socket(site: LiveSite):
    socket = await websockets.connect(site.url.replace("http", "ws") + "/ws/v1/chat/", max_size=2**22)
    await socket.send(json.dumps({"type": "auth", "token": site.token}))
    assert json.loads(await socket.recv())["type"] == "ready"
    return socket


async def concurrent_streams(site: LiveSite, count: int, new_tokens: int) -> dict:
    sockets = [await open_socket(site) for _ in range(count)]
    events: list[tuple[float, int, str]] = []
    started = time.perf_counter()

    async def one(index: int, socket) -> dict:
        # Different prompts, sampled: no request is a cache hit or a copy of another.
        body = {
            "type": "generate",
            "messages": [{"role": "user", "content": f"{MESSAGES[0]['content']} Version {index}."}],
            "max_new_tokens": new_tokens,
            "temperature": 0.7,
        }
        sent = time.perf_counter()
        await socket.send(json.dumps(body))
        first, tokens = None, 0
        while True:
            message = json.loads(await socket.recv())
            now = time.perf_counter()
            events.append((now - started, index, message["type"]))
            if message["type"] == "token":
                tokens += 1
                first = first if first is not None else now
            elif message["type"] == "done":
                return {
                    "ttft_ms": (first - sent) * 1000,
                    "tokens": message["usage"]["completion_tokens"],
                    "seconds": now - sent,
                    "tokens_per_s": message["usage"]["completion_tokens"] / (now - sent),
                }
            else:
                raise RuntimeError(message)

    results = await asyncio.gather(*(one(i, s) for i, s in enumerate(sockets)))
    for socket in sockets:
        await socket.close()
    events.sort()
    first_done = next(t for t, _, kind in events if kind == "done")
    progressing = {i for t, i, kind in events if kind == "token" and t < first_done}
    total_tokens = sum(r["tokens"] for r in results)
    wall = max(r["seconds"] for r in results)
    return {
        "streams": results,
        "all_progressing_before_first_finished": len(progressing) == count,
        "aggregate_tokens_per_s": total_tokens / wall,
    }


async def run(site: LiveSite, raw, runs: int, new_tokens: int, concurrent: int) -> dict:
    samples: dict[str, list[float]] = {"raw": [], "sse": [], "ws": []}
    async with httpx.AsyncClient(
        base_url=site.url, timeout=120, headers={"Authorization": f"Bearer {site.token}"}
    ) as http:
        socket = await open_socket(site)
        await sse_first_token(http, 4)  # warm-up both paths and the model
        await ws_first_token(socket, 4)
        raw()
        for _ in range(runs):
            samples["raw"].append(raw())
            await http.delete("/api/v1/cache")
            samples["sse"].append(await sse_first_token(http, new_tokens))
            await http.delete("/api/v1/cache")
            samples["ws"].append(await ws_first_token(socket, new_tokens))
        await socket.close()
    summary = {
        name: {"p50": statistics.median(v), "p95": percentile(v, 0.95), "n": len(v)} for name, v in samples.items()
    }
    for name in ("sse", "ws"):
        summary[name]["overhead_p50_ms"] = summary[name]["p50"] - summary["raw"]["p50"]
    summary["concurrent"] = await concurrent_streams(site, concurrent, new_tokens)
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=48)
    args = parser.parse_args(argv)

    import torch

    raw = raw_first_token(ROOT / "data" / "models" / MODEL)
    with LiveSite(LLM_MODEL=MODEL) as site:
        result = asyncio.run(run(site, raw, args.runs, args.new_tokens, args.concurrent))
    result["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    result["args"] = vars(args)

    print(f"time to first token, ms ({args.runs} runs; target: server overhead <= 15 ms at p50)")
    print(f"{'path':<10}{'p50':>10}{'p95':>10}{'overhead p50':>15}")
    for name in ("raw", "sse", "ws"):
        row = result[name]
        overhead = f"{row['overhead_p50_ms']:+.1f}" if "overhead_p50_ms" in row else ""
        print(f"{name:<10}{row['p50']:>10.1f}{row['p95']:>10.1f}{overhead:>15}")
    conc = result["concurrent"]
    print(f"\n{args.concurrent} concurrent WebSocket streams of {args.new_tokens} tokens:")
    for index, stream in enumerate(conc["streams"]):
        print(f"  stream {index}: first token {stream['ttft_ms']:.0f} ms, {stream['tokens_per_s']:.1f} tok/s")
    progressing = conc["all_progressing_before_first_finished"]
    print(f"  aggregate {conc['aggregate_tokens_per_s']:.1f} tok/s; all progressing: {progressing}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")

    return result


if __name__ == "__main__":
    main()
