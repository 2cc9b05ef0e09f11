"""Single-stream generation speed: raw `model.generate` vs the provider vs the HTTP API, and cache hits.

    .venv/bin/python bench/inference.py [--runs 5] [--new-tokens 128] [--hits 200]

In one run on the default model (SmolLM2-135M-Instruct, prepared under data/models): greedy
decoding of a fixed prompt, the median of `--runs` timed runs after a warm-up, for
1. raw `model.generate` on the provider's own weights and input ids (the limit);
2. `HFProvider.generate` (what the engine calls);
3. `POST /api/v1/predict` on a live daphne started here (temporary DATA_DIR, the cache
   cleared before each timed run so every run generates);
and the p50/p95 latency of cache hits through HTTP. Prints a table and writes
bench/results/inference.json. Figures are noisy on a small shared machine: compare ratios
from the same run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # run as a script, bench/ would shadow the `inference` app
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402

from inference.providers.base import GenerationRequest  # noqa: E402
from inference.providers.hf import HFProvider  # noqa: E402

MODEL = "SmolLM2-135M-Instruct"
PROMPT = "Write a long, detailed story about a dragon who learns to cook. Describe every dish."
RESULTS = ROOT / "bench" / "results" / "inference.json"
PASSWORD = secrets.token_urlsafe(16)  # a throwaway superuser in a throwaway database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def bench_local(provider: HFProvider, request: GenerationRequest, runs: int) -> tuple[dict, dict]:
    """Raw `model.generate` and `HFProvider.generate`, alternating run by run so noise hits both alike."""
    import torch

    ids = provider.prepare(request)
    input_ids = torch.tensor([ids])
    mask = torch.ones_like(input_ids)

    def raw() -> int:
        with torch.inference_mode():
            out = provider.hf_model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=request.max_new_tokens, do_sample=False
            )
        return out.shape[1] - len(ids)

    def via_provider() -> int:
        return provider.generate(request).usage.completion_tokens

    raw(), via_provider()  # warm-up
    rates: dict[str, list[float]] = {"raw": [], "provider": []}
    tokens = {}
    for _ in range(runs):
        for name, fn in (("raw", raw), ("provider", via_provider)):
            seconds, tokens[name] = timed(fn)
            rates[name].append(tokens[name] / seconds)
    return tuple(  # type: ignore[return-value]
        {"tokens_per_s": statistics.median(rates[n]), "runs": rates[n], "tokens": tokens[n]}
        for n in ("raw", "provider")
    )


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def authenticate(http: httpx.Client, username: str, password: str) -> None:
    """Make `http` an authenticated client: a JWT when accounts' token endpoint exists, else a session."""
    token = http.post("/api/v1/auth/token", json={"username": username, "password": password})
    if token.status_code == 200:
        http.headers["Authorization"] = f"Bearer {token.json()['access']}"
        return
    http.get("/admin/login/")
    login = http.post(
        "/admin/login/?next=/admin/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": http.cookies["csrftoken"]},
    )
    if "sessionid" not in http.cookies:
        raise RuntimeError(f"login failed: {login.status_code}")
    http.headers["X-CSRFToken"] = http.cookies["csrftoken"]  # DRF's session auth checks CSRF


def bench_http(runs: int, hits: int, new_tokens: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="llmsite-bench-") as data_dir:
        env = {
            **os.environ,
            "DATA_DIR": data_dir,
            "MODELS_DIR": str(ROOT / "data" / "models"),
            "DEBUG": "False",
            "LLM_MODEL": MODEL,
            "LOG_LEVEL": "WARNING",
            # A benchmark is not abuse: lift the per-user limits if the accounts app applies them.
            "RATELIMIT_PREDICT": "100000/m",
            "RATELIMIT_LOGIN": "1000/m",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        }
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "createsuperuser", "--noinput", "--username", "bench", "--email", "bench@example.com")
        log = open(Path(data_dir) / "daphne.log", "w+")  # noqa: SIM115 - read back on failure
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "llmsite.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            with httpx.Client(base_url=url, timeout=120) as http:
                deadline = time.monotonic() + 180
                while True:
                    try:
                        if http.get("/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline or server.poll() is not None:
                        log.seek(0)
                        raise RuntimeError(f"daphne did not become ready:\n{log.read()[-3000:]}")
                    time.sleep(0.3)
                authenticate(http, "bench", PASSWORD)
                body = {"prompt": PROMPT, "max_new_tokens": new_tokens, "temperature": 0}

                http.post("/api/v1/predict", json=body).raise_for_status()  # warm-up
                rates = []
                for _ in range(runs):
                    http.delete("/api/v1/cache")
                    started = time.perf_counter()
                    response = http.post("/api/v1/predict", json=body)
                    seconds = time.perf_counter() - started
                    response.raise_for_status()
                    tokens = response.json()["usage"]["completion_tokens"]
                    rates.append(tokens / seconds)

                http.post("/api/v1/predict", json=body)  # fill the cache
                latencies = []
                for _ in range(hits):
                    started = time.perf_counter()
                    response = http.post("/api/v1/predict", json=body)
                    latencies.append((time.perf_counter() - started) * 1000)
                    assert response.headers["X-Cache"] == "HIT", response.text
                latencies.sort()
                floor = []  # the same stack with no auth, no database, no model: what a cache hit cannot beat
                for _ in range(hits):
                    started = time.perf_counter()
                    http.get("/healthz")
                    floor.append((time.perf_counter() - started) * 1000)
        finally:
            server.terminate()
            server.wait(10)
    return {
        "tokens_per_s": statistics.median(rates),
        "runs": rates,
        "tokens": tokens,
        "cache_hit_ms": {
            "p50": statistics.median(latencies),
            "p95": latencies[int(len(latencies) * 0.95) - 1],
            "n": len(latencies),
        },
        "healthz_ms": {"p50": statistics.median(floor), "n": len(floor)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--hits", type=int, default=200)
    args = parser.parse_args()

    import torch

    provider = HFProvider(MODEL, ROOT / "data" / "models" / MODEL, device="cpu")
    provider.load()
    request = GenerationRequest(prompt=PROMPT, max_new_tokens=args.new_tokens)
    raw, via_provider = bench_local(provider, request, args.runs)
    provider.close()
    del provider  # free the cores' caches and memory for the server
    http = bench_http(args.runs, args.hits, args.new_tokens)

    result = {
        "model": MODEL,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "new_tokens": args.new_tokens,
        "runs": args.runs,
        "raw_generate": raw,
        "provider": via_provider,
        "http": {k: v for k, v in http.items() if k not in ("cache_hit_ms", "healthz_ms")},
        "ratios": {
            "provider_vs_raw": via_provider["tokens_per_s"] / raw["tokens_per_s"],
            "http_vs_raw": http["tokens_per_s"] / raw["tokens_per_s"],
        },
        "cache_hit_ms": http["cache_hit_ms"],
        "healthz_ms": http["healthz_ms"],
        "targets": {"provider_vs_raw": 0.97, "http_vs_raw": 0.95, "cache_hit_p50_ms": 5.0},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    rows = [
        ("raw model.generate", f"{raw['tokens_per_s']:.1f} tok/s", "1.00x", f"{raw['tokens']} tokens"),
        (
            "HFProvider.generate",
            f"{via_provider['tokens_per_s']:.1f} tok/s",
            f"{result['ratios']['provider_vs_raw']:.3f}x",
            "target >= 0.97x",
        ),
        (
            "HTTP POST /api/v1/predict",
            f"{http['tokens_per_s']:.1f} tok/s",
            f"{result['ratios']['http_vs_raw']:.3f}x",
            "target >= 0.95x",
        ),
        (
            "HTTP cache hit",
            f"p50 {http['cache_hit_ms']['p50']:.2f} ms",
            f"p95 {http['cache_hit_ms']['p95']:.2f} ms",
            "target p50 <= 5 ms",
        ),
        ("HTTP GET /healthz (floor)", f"p50 {http['healthz_ms']['p50']:.2f} ms", "", "same stack, no auth/db/model"),
    ]
    print(f"\n{MODEL}, cpu, {torch.get_num_threads()} threads, {args.new_tokens} new tokens, median of {args.runs}")
    for row in rows:
        print(f"  {row[0]:<28}{row[1]:>18}{row[2]:>14}   {row[3]}")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
