"""The request-metrics middleware's overhead: the same endpoints with it on and off, in one run.

    .venv/bin/python bench/metrics.py [--rounds 30] [--requests 150] [--concurrency 8] [--skip-live]

1. in-process: the middleware's own work per request (`_observe`: resolve the route name, bump
   the Prometheus counters and histogram, append a sample to the buffer), timed over many calls;
2. CPU per request: two Django ASGI handlers in this process, MIDDLEWARE with and without it,
   `/healthz` and `GET /api/v1/auth/me` (JWT authentication and a user lookup: a cheap API
   call) driven alternately; the metrics-on side's batched INSERT into SQLite is counted in.
   Process CPU time moves far less than wall time when other programs load the machine;
3. live: two daphne servers started here from the same code, METRICS_ENABLED=True (writing its
   batches to SQLite every METRICS_FLUSH_SECONDS, as in production) and False, each with its
   own temporary DATA_DIR. Each round sends `--requests` requests, `--concurrency` at a time, to
   both endpoints on both servers, alternating which server goes first; reported: the median
   over rounds of requests/s and of the per-round p50 latency, and the throughput change, of
   the medians and paired (the median of each round's on/off ratio, with its interquartile range).

Prints tables and writes bench/results/metrics.json. The client shares the machine's cores with
the servers: on a busy shared machine single live rounds vary by 10-20 %, so read the paired
figure with its range, and the in-process figures for the cost the middleware itself adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # run as a script, bench/ would shadow the apps

import httpx  # noqa: E402

from bench.live import free_port, percentile  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "metrics.json"
USERNAME, PASSWORD = "bench", "bench-pass-phrase-42"
ENDPOINTS = ("/healthz", "/api/v1/auth/me")


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmsite.settings")
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="llmsite-bench-metrics-")
    os.environ.setdefault("LLM_LOAD_AT_START", "never")
    import logging

    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # settings' LOGGING would print every request


def in_process(calls: int) -> dict[str, float]:
    """Microseconds per request that the middleware's own code takes (`_observe`), and `record()` alone."""
    from datetime import UTC, datetime

    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.urls import resolve

    from dashboard import middleware, services
    from dashboard.recorder import Recorder, Sample

    old = services.set_recorder(Recorder(lambda batch: None, batch_size=1000, max_buffer=10**7, background=False))
    request = RequestFactory().get("/api/v1/conversations/42")
    request.resolver_match = resolve(request.path)
    response = HttpResponse(b"{}")
    started = time.perf_counter()
    for _ in range(calls):
        middleware._observe(request, response, time.perf_counter(), datetime.now(UTC))
    observe_us = (time.perf_counter() - started) / calls * 1e6
    recorder = services.get_recorder()
    sample = Sample(datetime.now(UTC), "/x", "GET", 200, 1.0, False, None)
    started = time.perf_counter()
    for _ in range(calls):
        recorder.record(sample)
    record_us = (time.perf_counter() - started) / calls * 1e6
    services.set_recorder(old)
    return {"observe_us": round(observe_us, 2), "record_us": round(record_us, 2), "calls": calls}


def asgi_cpu(rounds: int, requests: int) -> list[dict[str, object]]:
    """CPU time per request through Django's whole ASGI stack, with and without the middleware.

    Two ASGIHandlers in this process (MIDDLEWARE with and without it), driven alternately on the
    same event loop; the metrics-on side writes its samples to a real SQLite database in batches
    inside the timed section. Process CPU time, unlike wall-clock time, barely moves when other
    programs load the machine, so this resolves differences of a percent or two.
    """
    from django.conf import settings
    from django.core.handlers.asgi import ASGIHandler
    from django.core.management import call_command
    from django.test import override_settings
    from rest_framework_simplejwt.tokens import AccessToken

    from dashboard import services
    from dashboard.recorder import Recorder

    call_command("migrate", "--noinput", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench", password=PASSWORD)
    token = str(AccessToken.for_user(user))
    recorder = Recorder(services.request_metrics_write, batch_size=500, max_buffer=10**6, background=False)
    services.set_recorder(recorder)
    on = ASGIHandler()
    without = [m for m in settings.MIDDLEWARE if m != "dashboard.middleware.MetricsMiddleware"]
    with override_settings(MIDDLEWARE=without):
        off = ASGIHandler()

    def scope(path: str) -> dict:
        headers = [(b"host", b"127.0.0.1")]
        if path != "/healthz":
            headers.append((b"authorization", f"Bearer {token}".encode()))
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        }  # fmt: skip

    async def one(app: ASGIHandler, path: str) -> None:
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # never disconnects
            return {}

        status = 0

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope(path), receive, send)
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}")

    async def requests_(app: ASGIHandler, path: str, n: int) -> None:
        for _ in range(n):
            await one(app, path)

    def batch(app: ASGIHandler, path: str, n: int, flush: bool) -> float:
        """CPU microseconds per request; the metrics-on side's batched INSERT is counted in."""
        started = time.process_time()
        loop.run_until_complete(requests_(app, path, n))
        if flush:
            recorder.flush()  # outside the event loop, as the server's flusher thread does it
        return (time.process_time() - started) / n * 1e6

    results = []
    loop = asyncio.new_event_loop()
    try:
        for path in ENDPOINTS:
            batch(on, path, 50, True)  # warm-up
            batch(off, path, 50, False)
            per: dict[str, list[float]] = {"on": [], "off": []}
            for round_ in range(rounds):
                for name in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                    app = on if name == "on" else off
                    per[name].append(batch(app, path, requests, name == "on"))
            ratios = [a / b for a, b in zip(per["on"], per["off"], strict=True)]
            results.append(
                {
                    "endpoint": path,
                    "off_cpu_us": round(statistics.median(per["off"]), 1),
                    "on_cpu_us": round(statistics.median(per["on"]), 1),
                    "cpu_change_pct": round((statistics.median(ratios) - 1) * 100, 2),
                }
            )
    finally:
        loop.close()
    return results


class Server:
    """daphne on a free port with its own DATA_DIR; its output goes to a log file (a pipe nobody reads would fill)."""

    def __init__(self, metrics: bool, data_dir: Path, **extra_env: str):
        data_dir.mkdir(parents=True)
        self.env = {
            **os.environ,
            "DATA_DIR": str(data_dir),
            "DEBUG": "False",
            "METRICS_ENABLED": str(metrics),
            "LLM_LOAD_AT_START": "never",
            "EMBEDDINGS_LOAD_AT_START": "never",
            "LOG_LEVEL": "WARNING",
            "RATELIMIT_LOGIN": "1000/m",
            "JWT_ACCESS_TOKEN_MINUTES": "15",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            **extra_env,
        }
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=self.env, check=True)
        subprocess.run(
            [*manage, "createsuperuser", "--noinput", "--username", USERNAME, "--email", "bench@example.com"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.log = open(data_dir / "daphne.log", "w+")  # noqa: SIM115 - closed in stop()
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                self.url.rsplit(":", 1)[1],
                "llmsite.asgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("daphne did not start")
            time.sleep(0.2)
        response = httpx.post(self.url + "/api/v1/auth/token", json={"username": USERNAME, "password": PASSWORD})
        response.raise_for_status()
        self.token = response.json()["access"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def burst(url: str, token: str, path: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """(requests per second, latencies in ms) for `requests` GETs, `concurrency` in flight; any failure raises."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"} if path != "/healthz" else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                sent = time.perf_counter()
                response = await client.get(path)
                latencies.append((time.perf_counter() - sent) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status_code}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, latencies


def live(args: argparse.Namespace) -> tuple[list[dict], int]:
    """The two daphne servers, alternated round by round: (rows, request rows the metrics-on server wrote)."""
    tmp = tempfile.TemporaryDirectory(prefix="llmsite-bench-metrics-")
    servers: dict[str, Server] = {}
    try:
        flush = {"METRICS_FLUSH_SECONDS": args.flush_seconds} if args.flush_seconds else {}
        servers["on"] = Server(True, Path(tmp.name) / "on", **flush)
        servers["off"] = Server(False, Path(tmp.name) / "off")
        runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        for path in ENDPOINTS:  # warm-up: imports, connections, first queries
            for server in servers.values():
                asyncio.run(burst(server.url, server.token, path, 100, args.concurrency))
        for round_ in range(args.rounds):
            order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
            for path in ENDPOINTS:
                for name in order:
                    server = servers[name]
                    try:
                        rps, latencies = asyncio.run(
                            burst(server.url, server.token, path, args.requests, args.concurrency)
                        )
                    except httpx.HTTPError as exc:
                        server.log.seek(0)
                        raise RuntimeError(f"{name} {path}: {exc!r}\n{server.log.read()[-3000:]}") from exc
                    runs.setdefault((path, name), []).append(
                        (rps, percentile(latencies, 0.5), percentile(latencies, 0.95))
                    )
        rows = []
        for path in ENDPOINTS:
            figures = {}
            for name in ("off", "on"):
                per_round = runs[(path, name)]
                figures[name] = {
                    "rps": round(statistics.median(r[0] for r in per_round), 1),
                    "p50_ms": round(statistics.median(r[1] for r in per_round), 2),
                    "p95_ms": round(statistics.median(r[2] for r in per_round), 2),
                    "rps_rounds": [round(r[0], 1) for r in per_round],
                }
            change = (figures["on"]["rps"] / figures["off"]["rps"] - 1) * 100
            # Rounds run back to back on and off: their ratio cancels the machine's drift between rounds.
            ratios = [on[0] / off[0] for on, off in zip(runs[(path, "on")], runs[(path, "off")], strict=True)]
            paired = statistics.median(ratios)
            quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [paired, paired, paired]
            rows.append(
                {
                    "endpoint": path,
                    **figures,
                    "throughput_change_pct": round(change, 1),
                    "paired_change_pct": round((paired - 1) * 100, 1),
                    "paired_change_iqr_pct": [round((quartiles[0] - 1) * 100, 1), round((quartiles[2] - 1) * 100, 1)],
                }
            )
        stored = httpx.get(
            servers["on"].url + "/api/v1/metrics?window=1h", headers={"Authorization": f"Bearer {servers['on'].token}"}
        ).json()["requests"]["total"]
    finally:
        for server in servers.values():
            server.stop()
        tmp.cleanup()

    print(
        f"\n{'endpoint':<18} {'off req/s':>10} {'on req/s':>10} {'change':>8} {'paired':>8} "
        f"{'off p50':>9} {'on p50':>9}"
    )
    for row in rows:
        print(
            f"{row['endpoint']:<18} {row['off']['rps']:>10} {row['on']['rps']:>10} "
            f"{row['throughput_change_pct']:>7}% {row['paired_change_pct']:>7}% "
            f"{row['off']['p50_ms']:>7}ms {row['on']['p50_ms']:>7}ms   paired IQR {row['paired_change_iqr_pct']}%"
        )
    print("change: of the medians; paired: the median of each round's on/off ratio (the steadier figure)")
    print(f"(rows the metrics-on server had written by the end: {stored})")
    return rows, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=150, help="requests per round, endpoint and server")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--calls", type=int, default=50_000, help="in-process calls of the middleware")
    parser.add_argument("--skip-live", action="store_true", help="only the in-process measurements")
    parser.add_argument("--cpu-rounds", type=int, default=20, help="rounds of the in-process CPU comparison")
    parser.add_argument("--cpu-requests", type=int, default=300, help="requests per CPU round")
    parser.add_argument(
        "--flush-seconds", default=None, help="METRICS_FLUSH_SECONDS of the metrics-on server (default: the setting's)"
    )
    args = parser.parse_args()

    _setup_django()
    micro = in_process(args.calls)
    print(f"in-process: {micro['observe_us']} µs per request (of which record(): {micro['record_us']} µs)")
    cpu = asgi_cpu(args.cpu_rounds, args.cpu_requests)
    print(f"\n{'endpoint':<18} {'CPU/request off':>16} {'on':>10} {'change':>8}   (one process, Django's ASGI stack)")
    for row in cpu:
        print(f"{row['endpoint']:<18} {row['off_cpu_us']:>14}µs {row['on_cpu_us']:>8}µs {row['cpu_change_pct']:>7}%")

    rows: list[dict] = []
    stored = None
    if not args.skip_live:
        rows, stored = live(args)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "settings": vars(args),
        "in_process": micro,
        "asgi_cpu": cpu,
        "live": rows,
        "rows_written_by_metrics_server": stored,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
