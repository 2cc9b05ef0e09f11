"""What the usage ledger and limits cost: cached completions per second with accounting on and off.

Part of the suite (`python -m bench --only usage`); runs alone too:

    .venv/bin/python -m bench.usage [--seconds 15] [--single-seconds 6] [--rounds 3] [--clients 8]

Two live daphnes on the same model, side by side, each with its own database: one with
USAGE_ENABLED=False, one with USAGE_ENABLED=True and site default limits set far above what the
run can use, so every request takes the whole path (held against three limits, a conditional
UPDATE each, and added to the hour's ledger row) and none is refused. On each, a registered user
(not staff: staff are exempt from the site defaults) takes a JWT and fills the response cache
with one deterministic request; then `clients` closed-loop clients send that same request to
`POST /api/v1/predict` for `seconds`, then one client for `single_seconds`. A cached answer
never reaches the model, so what is left is the web stack, the cache and the accounting.

Bursts alternate between the servers (off, on, on, off, off, on, ...) so that outside load on a
shared machine hits both alike; the result is the ratio of the medians, with each round's ratio
beside it to show the spread. Last, the ledger check: `GET /api/v1/usage` on the "on" server
counts exactly the 200 responses its clients got.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import MODEL, RESULTS, ROOT, load_snapshot, summary
from llmsite.testing import LiveServer, start_live_server

PATH = "/api/v1/predict"
BODY = {"prompt": "What is the capital of France?", "max_new_tokens": 16, "temperature": 0}
PASSWORD = secrets.token_urlsafe(16)  # a fresh database each run
# Set, so that every request is held against them, and never reached.
LIMITS = {
    "USAGE_DEFAULT_REQUESTS_PER_MINUTE": "1000000",
    "USAGE_DEFAULT_TOKENS_PER_MINUTE": "1000000000",
    "USAGE_DEFAULT_TOKENS_PER_DAY": "1000000000",
}
MODES = ("off", "on")


def _serve(data_dir: Path, mode: str) -> LiveServer:
    data_dir.mkdir()
    server = start_live_server(
        data_dir,
        MODELS_DIR=str(ROOT / "data" / "models"),
        LLM_MODEL=MODEL,
        LOG_LEVEL="WARNING",
        USAGE_ENABLED=str(mode == "on"),
        **LIMITS,
    )
    try:
        server.wait_ready("/readyz")  # the model's runner is up: the first request below only fills the cache
    except BaseException:
        server.stop()
        raise
    return server


def _login(url: str) -> str:
    with httpx.Client(base_url=url, timeout=60) as http:
        http.post("/api/v1/auth/register", json={"username": "bench", "password": PASSWORD}).raise_for_status()
        tokens = http.post("/api/v1/auth/token", json={"username": "bench", "password": PASSWORD})
        tokens.raise_for_status()
        return tokens.json()["access"]


async def _burst(url: str, token: str, clients: int, seconds: float) -> dict:
    """`clients` closed-loop clients sending BODY for `seconds`: requests/s of 200s, latency, statuses."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    misses = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as http:

        async def client() -> None:
            nonlocal misses
            while time.perf_counter() < ends:
                sent = time.perf_counter()
                response = await http.post(PATH, json=BODY)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - sent) * 1000)
                    misses += response.headers.get("X-Cache") != "HIT"

        started = time.perf_counter()
        ends = started + seconds
        await asyncio.gather(*(client() for _ in range(clients)))
        duration = time.perf_counter() - started
    return {
        "clients": clients,
        "duration_s": round(duration, 2),
        "ok": statuses[200],
        "statuses": {str(code): n for code, n in sorted(statuses.items())},
        "cache_misses": misses,
        "rps": round(statuses[200] / duration, 1),
        "latency_ms": summary(latencies),
    }


def _commit() -> str:
    """The code measured: HEAD, marked when the tree outside bench/ differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", ":!bench"], cwd=ROOT).returncode
    return head.stdout.strip() + ("+changes" if dirty else "")


def _order(rounds: int) -> list[str]:
    """off, on, on, off, off, on, ...: each mode goes first as often as the other (linear drift cancels)."""
    return [mode for r in range(rounds) for mode in (MODES if r % 2 == 0 else MODES[::-1])]


def _compare(runs: dict[str, list[dict]]) -> dict:
    off = [run["rps"] for run in runs["off"]]
    on = [run["rps"] for run in runs["on"]]
    return {
        "off_rps": off,
        "on_rps": on,
        "off_median_rps": round(statistics.median(off), 1),
        "on_median_rps": round(statistics.median(on), 1),
        "ratio": round(statistics.median(on) / statistics.median(off), 3),
        "round_ratios": [round(a / b, 3) for a, b in zip(on, off, strict=True)],
        "off_latency_p50_ms": round(statistics.median(run["latency_ms"]["p50"] for run in runs["off"]), 1),
        "on_latency_p50_ms": round(statistics.median(run["latency_ms"]["p50"] for run in runs["on"]), 1),
        "off_latency_p95_ms": round(statistics.median(run["latency_ms"]["p95"] for run in runs["off"]), 1),
        "on_latency_p95_ms": round(statistics.median(run["latency_ms"]["p95"] for run in runs["on"]), 1),
    }


def measure(seconds: float = 15, single_seconds: float = 6, rounds: int = 3, clients: int = 8) -> dict:
    """Both servers, alternating bursts; {"concurrent", "single": comparisons, "ledger": the check, "runs": all}."""
    result: dict = {
        "model": MODEL,
        "request": BODY,
        "limits": LIMITS,
        "plan": {"seconds": seconds, "single_seconds": single_seconds, "rounds": rounds, "clients": clients},
        "commit": _commit(),
        "load_before": load_snapshot(),
    }
    with tempfile.TemporaryDirectory(prefix="llmsite-usage-") as tmp:
        with ThreadPoolExecutor(2) as pool:  # both start (migrate, load the model) at once
            starting = {mode: pool.submit(_serve, Path(tmp) / mode, mode) for mode in MODES}
            servers = {}
            try:
                for mode, future in starting.items():
                    servers[mode] = future.result()
            except BaseException:
                for future in starting.values():
                    if future.exception() is None:
                        future.result().stop()
                raise
        try:
            tokens = {mode: _login(server.url) for mode, server in servers.items()}
            answered = dict.fromkeys(MODES, 0)
            for mode, server in servers.items():
                with httpx.Client(base_url=server.url, timeout=120) as http:
                    warm = http.post(PATH, json=BODY, headers={"Authorization": f"Bearer {tokens[mode]}"})
                    warm.raise_for_status()
                    answered[mode] += 1
            runs: dict[str, dict[str, list[dict]]] = {name: {m: [] for m in MODES} for name in ("concurrent", "single")}
            for mode in _order(rounds):
                url = servers[mode].url
                for name, n, span in (("concurrent", clients, seconds), ("single", 1, single_seconds)):
                    run = asyncio.run(_burst(url, tokens[mode], n, span))
                    runs[name][mode].append(run)
                    answered[mode] += run["ok"]
                    print(f"[usage] {mode:3} {n} client(s): {run['rps']} req/s, {run['latency_ms']}", flush=True)
            headers = {"Authorization": f"Bearer {tokens['on']}"}
            usage = httpx.get(servers["on"].url + "/api/v1/usage", headers=headers, timeout=60).json()
        finally:
            for server in servers.values():
                server.stop()
    totals = usage["totals"]
    result["concurrent"] = _compare(runs["concurrent"])
    result["single"] = _compare(runs["single"])
    result["ledger"] = {
        "responses_200": answered["on"],
        "ledger_requests": totals["requests"],
        "ledger_cached_requests": totals["cached_requests"],
        "matches": totals["requests"] == answered["on"],
        "limits": usage["limits"],
    }
    result["non_200"] = sum(
        n
        for kind in runs.values()
        for mode in kind.values()
        for run in mode
        for code, n in run["statuses"].items()
        if code != "200"
    )
    result["runs"] = runs
    result["load_after"] = load_snapshot()
    return result


def markdown(result: dict) -> str:
    plan, ledger = result["plan"], result["ledger"]
    lines = [
        "| cached `POST /api/v1/predict` | accounting off (req/s) | on (req/s) | on / off | per round | "
        "p50 off / on (ms) | p95 off / on (ms) |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, label in (("concurrent", f"{plan['clients']} clients"), ("single", "1 client")):
        c = result[name]
        lines.append(
            f"| {label} | {c['off_median_rps']} | {c['on_median_rps']} | {c['ratio']:.2f} | "
            f"{', '.join(f'{r:.2f}' for r in c['round_ratios'])} | {c['off_latency_p50_ms']} / "
            f"{c['on_latency_p50_ms']} | {c['off_latency_p95_ms']} / {c['on_latency_p95_ms']} |"
        )
    lines += [
        "",
        f"Two daphnes side by side, one with USAGE_ENABLED=False, one with it on and three default limits "
        f"set but never reached (every request is held against them and written to the ledger); "
        f"{plan['rounds']} rounds of {plan['seconds']} s ({plan['clients']} clients) and "
        f"{plan['single_seconds']} s (1 client) per server, alternating; medians. "
        f"Ledger check: {ledger['responses_200']} answers with 200, the ledger counts {ledger['ledger_requests']} "
        f"requests ({'equal' if ledger['matches'] else '**not equal**'}). Other statuses: {result['non_200']}. "
        f"Run at {result['load_before']['at']} on commit {result['commit']}; load average at the start "
        f"{result['load_before']['loadavg']}, at the end {result['load_after']['loadavg']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="each burst of concurrent clients")
    parser.add_argument("--single-seconds", type=float, default=6, help="each burst of one client")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per server")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    result = measure(args.seconds, args.single_seconds, args.rounds, args.clients)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "usage.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
