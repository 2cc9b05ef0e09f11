"""Serving benchmark: N concurrent streaming clients against an OpenAI-compatible chat endpoint.

The same client drives llmsite (`/v1/chat/completions` on a live daphne, with and without
batching) and the peer server (`transformers serve --continuous-batching`). Each client sends
its requests one after another (a closed loop, like vLLM's `--max-concurrency`), every request
with its own prompt, greedy, `stream: true` with `stream_options.include_usage`. Metrics follow
vLLM's serving benchmark: request throughput, output token throughput, TTFT, TPOT =
(E2E - TTFT) / (output tokens - 1), ITL, E2E latency.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import MODEL, MODEL_DIR, ROOT, peak_rss_mib, peak_rss_tree_mib, story_prompt, summary
from bench.live import LiveSite, free_port


async def one_request(http: httpx.AsyncClient, model: str, prompt: str, new_tokens: int) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": new_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sent = time.perf_counter()
    first = None
    arrivals: list[float] = []
    parts: list[str] = []
    usage = None
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    now = time.perf_counter()
                    first = first if first is not None else now
                    arrivals.append(now)
                    parts.append(text)
    done = time.perf_counter()
    tokens = usage["completion_tokens"] if usage else len(parts)
    ttft = (first - sent) if first is not None else None
    return {
        "prompt": prompt,
        "text": "".join(parts),
        "tokens": tokens,
        "ttft": ttft,
        "e2e": done - sent,
        "tpot": (done - first) / (tokens - 1) if first is not None and tokens > 1 else None,
        "itl": [b - a for a, b in itertools.pairwise(arrivals)],
    }


async def sweep_level(url: str, headers: dict, model: str, clients: int, rounds: int, new_tokens: int) -> dict:
    """`clients` closed-loop clients, `rounds` requests each; vLLM-style metrics over all requests."""
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600, limits=limits) as http:

        async def client(index: int) -> list[dict]:
            return [
                await one_request(http, model, story_prompt(clients * 1000 + index * 10 + r), new_tokens)
                for r in range(rounds)
            ]

        started = time.perf_counter()
        results = [r for rs in await asyncio.gather(*(client(i) for i in range(clients))) for r in rs]
        duration = time.perf_counter() - started
    output_tokens = sum(r["tokens"] for r in results)
    ms = 1000.0
    return {
        "clients": clients,
        "requests": len(results),
        "duration_s": round(duration, 2),
        "request_throughput": round(len(results) / duration, 3),
        "output_token_throughput": round(output_tokens / duration, 1),
        "output_tokens": output_tokens,
        "ttft_ms": summary([r["ttft"] * ms for r in results if r["ttft"] is not None]),
        "tpot_ms": summary([r["tpot"] * ms for r in results if r["tpot"] is not None]),
        "itl_ms": summary([gap * ms for r in results for gap in r["itl"]]),
        "e2e_ms": summary([r["e2e"] * ms for r in results]),
        "texts": {r["prompt"]: r["text"] for r in results},
    }


async def sweep(url: str, headers: dict, model: str, levels: list[int], rounds: int, new_tokens: int) -> list[dict]:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as http:
        await one_request(http, model, "Say hello.", 8)  # warm-up: first-call allocations, lazy imports
    return [await sweep_level(url, headers, model, n, rounds, new_tokens) for n in levels]


def llmsite(
    batching: bool, levels: list[int], rounds: int, new_tokens: int, cache_hits: int = 0, engine: str = "auto"
) -> dict:
    """The sweep against a live llmsite (LLM_ENGINE, LLM_BATCHING on or off); optionally cache-hit latency."""
    with LiveSite(LLM_MODEL=MODEL, LLM_BATCHING="on" if batching else "off", LLM_ENGINE=engine) as site:
        headers = {"Authorization": f"Bearer {site.token}"}
        result: dict = {"levels": asyncio.run(sweep(site.url, headers, MODEL, levels, rounds, new_tokens))}
        if cache_hits:
            result["cache"] = cache_latency(site, cache_hits)
        result["peak_rss_mib"] = peak_rss_tree_mib(site.server.pid)  # the server and its runner
    return result


def cache_latency(site: LiveSite, n: int) -> dict:
    """A cached answer through `POST /api/v1/predict` against `GET /healthz` (a trivial JSON view), same stack."""
    body = {"prompt": "What is the capital of France?", "max_new_tokens": 16, "temperature": 0}
    with site.client() as http:
        http.post("/api/v1/predict", json=body).raise_for_status()  # fill the cache

        def timed(call) -> list[float]:
            out = []
            for _ in range(n):
                started = time.perf_counter()
                response = call()
                out.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            return out

        hits = timed(lambda: http.post("/api/v1/predict", json=body))
        assert http.post("/api/v1/predict", json=body).headers.get("X-Cache") == "HIT"
        floor = timed(lambda: http.get("/healthz"))

    async def throughput(path: str, method: str, clients: int = 8) -> float:
        async with httpx.AsyncClient(base_url=site.url, headers={"Authorization": f"Bearer {site.token}"}) as http:

            async def worker() -> int:
                done = 0
                for _ in range(n // clients):
                    if method == "POST":
                        (await http.post(path, json=body)).raise_for_status()
                    else:
                        (await http.get(path)).raise_for_status()
                    done += 1
                return done

            started = time.perf_counter()
            total = sum(await asyncio.gather(*(worker() for _ in range(clients))))
            return round(total / (time.perf_counter() - started), 1)

    return {
        "requests": n,
        "cache_hit_ms": summary(hits),
        "healthz_ms": summary(floor),
        "cache_hit_rps_8_clients": asyncio.run(throughput("/api/v1/predict", "POST")),
        "healthz_rps_8_clients": asyncio.run(throughput("/healthz", "GET")),
    }


class PeerServer:
    """`transformers serve` on the same converted folder, continuous batching on, CPU, float32."""

    def __init__(self, folder: Path = MODEL_DIR, continuous_batching: bool = True):
        self.folder = folder
        self.continuous_batching = continuous_batching

    def __enter__(self) -> PeerServer:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile("w+")
        executable = Path(sys.executable).with_name("transformers")
        command = [str(executable), "serve", str(self.folder), "--device", "cpu", "--dtype", "float32"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.continuous_batching:
            command.append("--continuous-batching")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:  # ready when a one-token chat answers (its /v1/models needs a hub cache folder)
            try:
                asyncio.run(self._ping())
                return self
            except (httpx.HTTPError, RuntimeError):
                if self.server.poll() is not None or time.monotonic() > deadline:
                    self._log.seek(0)
                    log = self._log.read()[-3000:]
                    self.__exit__()
                    raise RuntimeError(f"transformers serve did not start:\n{log}") from None
                time.sleep(0.5)

    async def _ping(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as http:
            await one_request(http, str(self.folder), "Hi", 1)

    def __exit__(self, *exc: object) -> None:
        self.server.terminate()
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()
        self._log.close()


def peer(levels: list[int], rounds: int, new_tokens: int) -> dict:
    with PeerServer() as server:
        levels_out = asyncio.run(sweep(server.url, {}, str(server.folder), levels, rounds, new_tokens))
        return {
            "server": "transformers serve --continuous-batching (CPU, float32)",
            "levels": levels_out,
            "peak_rss_mib": peak_rss_mib(server.server.pid),
        }
