"""A bounded load run against a live site: many clients, mixed traffic, and what must hold under it.

    make loadtest                                  # 200 clients, 60 s warm-up, 180 s measured
    .venv/bin/python -m bench.load --clients 50 --seconds 30 --warmup 10   # a quick look

One throw-away daphne (its own DATA_DIR and database, the real model in its runner) on loopback.
Each client is a user of its own with an API key, and loops until the run ends, pausing a
moment between actions as a person would: cached completions (a few fixed prompts), new answers
in its own conversation (plain JSON and streamed over SSE), reading its conversation list and
history, rating an answer, searching a shared document collection, health checks. A separate
`curl` probes `/healthz` every half second (a light client, so the load generator's own delays do
not count), and the server's memory (daphne plus its runners) is sampled every two seconds.

It passes when:
- no answer is a 5xx, except 503s that carry `Retry-After` (clients wait that long and go on);
- the `/healthz` probe's p99 stays under `--healthz-p99-ms` while generation keeps the CPU busy;
- every completion a client got has exactly one usage record, and no other records exist;
- every conversation holds exactly the messages its client saw, in order;
- memory after the run is within `--rss-growth` of memory after the warm-up.
It writes bench/results/load.json, load.md and load.png (memory, probe latency and throughput
over time), and exits 1 when a condition fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.common import MODEL, RESULTS, ROOT, TOPICS
from bench.live import percentile
from llmsite.testing import LiveServer, start_live_server

CACHED_PROMPTS = [f"In one sentence, what is {topic}?" for topic in TOPICS[:4]]
DOCUMENTS = [
    f"Handbook section {i}: how to care for {topic}, with the tools it needs and the mistakes to avoid."
    for i, topic in enumerate(TOPICS * 2)
]
# What a client does next, and how often (weights).
ACTIONS = {
    "cached": 20,
    "answer": 12,
    "stream": 12,
    "conversations": 12,
    "history": 10,
    "feedback": 6,
    "search": 18,
    "health": 10,
}
SEED_SCRIPT = """
import json, sys
from django.contrib.auth import get_user_model
from accounts.services import api_key_create
User = get_user_model()
secrets = []
for i in range(int(sys.argv[2])):  # argv: -c, this script, the count
    user = User(username=f"load{i:04d}")
    user.set_unusable_password()  # they sign in with API keys only (hashing 200 passwords takes a minute)
    user.save()
    secrets.append(api_key_create(user=user, name="load")[1])
filler = User(username="warmup")  # fills the KV cache before the run; not one of the checked clients
filler.set_unusable_password()
filler.save()
secrets.append(api_key_create(user=filler, name="warmup")[1])
watcher = User.objects.create(username="metrics-reader", is_staff=True)
secrets.append(api_key_create(user=watcher, name="metrics", scopes=["metrics"])[1])  # reads /metrics only
print(json.dumps(secrets))
"""
SHARE_SCRIPT = """
from embeddings.models import Collection
print(Collection.objects.filter(name="handbook").update(shared=True))
"""
CHECK_SCRIPT = """
import json
from collections import defaultdict
from conversations.models import Conversation, Message
from inference.models import InferenceRecord
records = defaultdict(int)
for request_id in InferenceRecord.objects.filter(user__username__startswith="load", status="ok").values_list(
    "request_id", flat=True
):
    records[f"cmpl-{request_id.hex}"] += 1  # as the completion's id says it
conversations = {}
for conversation in Conversation.objects.filter(user__username__startswith="load"):
    rows = Message.objects.filter(conversation=conversation).order_by("id").values_list("role", "content")
    conversations[str(conversation.pk)] = [list(row) for row in rows]
print(json.dumps({"records": records, "conversations": conversations}))
"""


@dataclass
class Outcome:
    at: float  # seconds since the measured run began (negative during the warm-up)
    action: str
    status: int  # 0: no HTTP answer (connection refused, reset, timeout)
    seconds: float
    kind: str = ""  # the error code for errors, `cached` for cache hits


@dataclass
class Client:
    index: int
    secret: str
    conversation: int = 0
    seen: list[list[str]] = field(default_factory=list)  # (role, content) as this client saw them
    answered: list[str] = field(default_factory=list)  # completion ids this client got
    messages: list[int] = field(default_factory=list)  # answers it may rate


class LoadRun:
    def __init__(self, args: argparse.Namespace, server: LiveServer, secrets: list[str]):
        self.args = args
        self.server = server
        self.clients = [Client(i, secret) for i, secret in enumerate(secrets)]
        self.outcomes: list[Outcome] = []
        self.t0 = 0.0  # when the measured run begins
        self.stop_at = 0.0
        self.unexpected: list[str] = []  # the first few surprising answers, for the report

    # --- one client ------------------------------------------------------------------------------
    async def client_loop(self, client: Client) -> None:
        rng = random.Random(client.index)
        names, weights = list(ACTIONS), list(ACTIONS.values())
        headers = {"Authorization": f"Bearer {client.secret}"}
        timeout = httpx.Timeout(300, connect=30)
        async with httpx.AsyncClient(base_url=self.server.url, headers=headers, timeout=timeout) as http:
            response = await http.post("/api/v1/conversations", json={"title": f"load {client.index}"})
            response.raise_for_status()
            client.conversation = response.json()["id"]
            await asyncio.sleep(rng.uniform(0, 2))  # do not all start in the same instant
            n = 0
            while time.monotonic() < self.stop_at:
                action = rng.choices(names, weights)[0]
                if action == "feedback" and not client.messages:
                    action = "answer"
                n += 1
                started = time.monotonic()
                try:
                    status, kind, wait = await getattr(self, f"do_{action}")(http, client, rng, n)
                except httpx.TransportError as exc:
                    status, kind, wait = 0, type(exc).__name__, 1.0
                self.outcomes.append(Outcome(started - self.t0, action, status, time.monotonic() - started, kind))
                await asyncio.sleep(wait if wait else rng.uniform(0.3, 1.5))

    def _failed(self, action: str, response: httpx.Response) -> tuple[int, str, float]:
        """An error answer: its code, and how long to wait before the next action (Retry-After)."""
        try:
            kind = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            kind = "not json"
        retry_after = response.headers.get("Retry-After")
        documented = response.status_code == 503 and retry_after
        if response.status_code >= 500 and not documented and len(self.unexpected) < 20:
            self.unexpected.append(f"{action}: {response.status_code} {response.text[:300]}")
        return response.status_code, kind, float(retry_after) if retry_after else 0.0

    async def do_cached(self, http, client, rng, n):
        body = {"prompt": rng.choice(CACHED_PROMPTS), "max_new_tokens": 16, "temperature": 0}
        response = await http.post("/api/v1/predict", json=body)
        if response.status_code != 200:
            return self._failed("cached", response)
        answer = response.json()
        client.answered.append(answer["id"])
        return 200, "cached" if answer["cached"] else "", 0.0

    def _ask(self, client: Client, rng: random.Random, n: int) -> dict:
        topic = rng.choice(TOPICS)
        prompt = f"Client {client.index}, turn {n}: tell me one fact about {topic}."
        return {"prompt": prompt, "max_new_tokens": 24, "conversation": client.conversation}

    def _saw(self, client: Client, prompt: str, answer: dict, text: str) -> None:
        client.answered.append(answer["id"])
        client.seen += [["user", prompt], ["assistant", text]]
        if answer.get("message"):
            client.messages.append(answer["message"])

    async def do_answer(self, http, client, rng, n):
        body = self._ask(client, rng, n)
        response = await http.post("/api/v1/predict", json=body)
        if response.status_code != 200:
            return self._failed("answer", response)
        answer = response.json()
        self._saw(client, body["prompt"], answer, answer["text"])
        return 200, "", 0.0

    async def do_stream(self, http, client, rng, n):
        body = {**self._ask(client, rng, n), "stream": True}
        async with http.stream("POST", "/api/v1/predict", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return self._failed("stream", response)
            text, event, done, error = [], "", None, None
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                    if event == "done":
                        done = data
                    elif event == "error":
                        error = data
                    else:
                        text.append(data["delta"])
                    event = ""
        if done is None:
            # An error after some text: the answer so far stays in the conversation (docs/api.md).
            if text:
                client.seen += [["user", body["prompt"]], ["assistant", "".join(text)]]
            kind = (error or {}).get("error", {}).get("code", "stream cut")
            if len(self.unexpected) < 20:
                self.unexpected.append(f"stream: ended without done: {error}")
            return 200, f"stream error: {kind}", 0.0
        self._saw(client, body["prompt"], done, "".join(text))
        return 200, "", 0.0

    async def do_conversations(self, http, client, rng, n):
        response = await http.get("/api/v1/conversations")
        return (200, "", 0.0) if response.status_code == 200 else self._failed("conversations", response)

    async def do_history(self, http, client, rng, n):
        response = await http.get(f"/api/v1/conversations/{client.conversation}")
        return (200, "", 0.0) if response.status_code == 200 else self._failed("history", response)

    async def do_feedback(self, http, client, rng, n):
        body = {"message": rng.choice(client.messages), "rating": rng.choice([1, -1])}
        response = await http.post("/api/v1/feedback", json=body)
        return (response.status_code, "", 0.0) if response.status_code < 300 else self._failed("feedback", response)

    async def do_search(self, http, client, rng, n):
        body = {"query": f"how to care for {rng.choice(TOPICS)}", "top_k": 3}
        response = await http.post("/api/v1/embed/search", json=body)
        return (200, "", 0.0) if response.status_code == 200 else self._failed("search", response)

    async def do_health(self, http, client, rng, n):
        response = await http.get("/healthz")
        return (200, "", 0.0) if response.status_code == 200 else self._failed("health", response)

    # --- the run ---------------------------------------------------------------------------------
    async def run(self) -> None:
        self.t0 = time.monotonic() + self.args.warmup
        self.stop_at = self.t0 + self.args.seconds
        await asyncio.gather(*(self.client_loop(c) for c in self.clients))


class Probe:
    """`/healthz` with curl every half second, in a process of its own: (monotonic time, ms or None).

    `OPTIONS /healthz` is the same probe through Django's middleware and a DRF view (only GET and HEAD
    are answered in front of Django): the difference between the two is what that path costs under load.
    """

    def __init__(self, url: str, method: str = "GET"):
        script = (
            "while true; do "
            f"curl -s -o /dev/null -m 5 -X {method} -w '%{{http_code}} %{{time_total}}\\n' {url}/healthz; "
            "sleep 0.5; done"
        )
        self.started = time.monotonic()
        self.process = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
        self.samples: list[tuple[float, float | None]] = []
        self.reader = asyncio.get_running_loop().run_in_executor(None, self._read)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            code, seconds = line.split()
            self.samples.append((time.monotonic(), float(seconds) * 1000 if code == "200" else None))

    async def stop(self) -> None:
        self.process.terminate()
        await self.reader


class Memory:
    """The server's resident memory (daphne and every child: its runners), sampled every 2 s."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, float, float]] = []  # (monotonic, daphne MiB, runners MiB)
        self.cpu: list[tuple[float, float, float, float]] = []  # (monotonic, daphne, runners, clients) in % of a core
        self._last: tuple[float, float, float, float] | None = None

    def sample(self) -> tuple[float, float]:
        web = self.root.memory_info().rss / 2**20
        runners, runner_cpu = 0.0, 0.0
        for child in self.root.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                runners += child.memory_info().rss / 2**20
                runner_cpu += sum(child.cpu_times()[:2])
        now = time.monotonic()
        seconds = (now, sum(self.root.cpu_times()[:2]), runner_cpu, sum(psutil.Process().cpu_times()[:2]))
        if self._last is not None and now > self._last[0]:
            span = now - self._last[0]
            used = (max(0.0, (b - a) / span * 100) for a, b in zip(self._last[1:], seconds[1:], strict=True))
            self.cpu.append((now, *used))
        self._last = seconds
        self.samples.append((now, web, runners))
        return web, runners

    async def watch(self, until: asyncio.Event) -> None:
        while not until.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), 2)


def manage_shell(env: dict[str, str], script: str, *args: str) -> str:
    command = [sys.executable, "-c", "import django, sys; django.setup(); exec(sys.argv[1])", script, *args]
    env = {**env, "DJANGO_SETTINGS_MODULE": "llmsite.settings", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


def seed(server: LiveServer, env: dict[str, str], clients: int) -> list[str]:
    """The clients' users and keys, and a shared collection to search."""
    secrets = json.loads(manage_shell(env, SEED_SCRIPT, str(clients)).strip().splitlines()[-1])
    headers = {"Authorization": f"Bearer {secrets[0]}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=300) as http:
        added = http.post(
            "/api/v1/embed/add", json={"collection": "handbook", "documents": [{"text": t} for t in DOCUMENTS]}
        )
        added.raise_for_status()
    manage_shell(env, SHARE_SCRIPT)
    return secrets  # then the warm-up user's, then the metrics reader's


async def fill_kv_cache(server: LiveServer, secret: str, requests: int) -> None:
    """Long prompts at full batch, so the runner's KV cache grows to its working size during the warm-up.

    The engine allocates its KV cache as sequences need it, up to LLM_KV_CACHE_GB, and keeps it;
    conversations grow through a run, so without this the cache would still be growing when memory
    is compared, which is filling, not leaking.
    """
    headers = {"Authorization": f"Bearer {secret}"}
    filler = " ".join(DOCUMENTS) * 2  # about 1,800 tokens: 16 of them pass 1 GB of float32 KV cache

    async def one(http: httpx.AsyncClient, i: int) -> None:
        body = {"prompt": f"({i}) {filler}\nSummarise.", "max_new_tokens": 64}
        await http.post("/api/v1/predict", json=body)

    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=600) as http:
        await asyncio.gather(*(one(http, i) for i in range(requests)))


def loop_lag(server: LiveServer, secret: str) -> dict[str, float]:
    """The server's event-loop lag histogram so far: {upper bound in seconds: count at or below}."""
    headers = {"Authorization": f"Bearer {secret}", "Accept": "text/plain"}
    text = httpx.get(server.url + "/metrics", headers=headers, timeout=60).text
    buckets = {}
    for line in text.splitlines():
        if line.startswith("llmsite_event_loop_lag_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("llmsite_event_loop_lag_seconds_sum"):
            buckets[-1.0] = float(line.rsplit(" ", 1)[1])  # the sum of all lags, kept beside the buckets
    return buckets


def lag_between(before: dict[float, float], after: dict[float, float]) -> dict:
    """Lag during the measured run: how many wake-ups, the p99's bucket, and the share late by more than 50 ms."""
    lag_sum = after.get(-1.0, 0) - before.get(-1.0, 0)
    counts = {bound: after.get(bound, 0) - before.get(bound, 0) for bound in sorted(after) if bound >= 0}
    total = counts.get(float("inf"), 0)
    if not total:
        return {"wakeups": 0}
    p99 = next(bound for bound, n in counts.items() if n >= 0.99 * total)
    late = total - max((n for bound, n in counts.items() if bound <= 0.05), default=0)
    return {
        "wakeups": int(total),
        "mean_ms": round(lag_sum / total * 1000, 1),
        "p99_at_most_ms": p99 * 1000,
        "late_over_50ms": round(late / total, 4),
    }


def cpu_means(memory: Memory, start: float, end: float) -> dict[str, float]:
    rows = [row for row in memory.cpu if start <= row[0] < end]
    if not rows:
        return {}
    return {
        name: round(statistics.mean(r[i] for r in rows), 1)
        for i, name in ((1, "daphne"), (2, "runner"), (3, "clients"))
    }


def summarise(
    run: LoadRun,
    probe: Probe,
    django_probe: Probe,
    memory: Memory,
    warm_rss: float,
    end_rss: float,
    checks: dict,
    lag: dict,
) -> dict:
    measured = [o for o in run.outcomes if 0 <= o.at < run.args.seconds]
    by_action: dict[str, dict] = {}
    for action in ACTIONS:
        rows = [o for o in measured if o.action == action]
        ok = [o.seconds * 1000 for o in rows if 200 <= o.status < 300]
        by_action[action] = {
            "requests": len(rows),
            "ok": len(ok),
            "p50_ms": round(percentile(ok, 0.5), 1) if ok else None,
            "p99_ms": round(percentile(ok, 0.99), 1) if ok else None,
        }
    errors = Counter(f"{o.status} {o.kind}".strip() for o in measured if not 200 <= o.status < 300)
    stream_errors = Counter(o.kind for o in measured if o.kind.startswith("stream error"))
    t_start, t_end = run.t0, run.t0 + run.args.seconds
    probes = [ms for at, ms in probe.samples if t_start <= at < t_end]
    probe_ok = [ms for ms in probes if ms is not None]
    via_django = [ms for at, ms in django_probe.samples if t_start <= at < t_end and ms is not None]
    completions = sum(by_action[a]["ok"] for a in ("cached", "answer", "stream"))
    return {
        "clients": len(run.clients),
        "seconds": run.args.seconds,
        "warmup_seconds": run.args.warmup,
        "requests": len(measured),
        "requests_per_s": round(len(measured) / run.args.seconds, 1),
        "completions_per_s": round(completions / run.args.seconds, 2),
        "actions": by_action,
        "errors": dict(errors),
        "stream_errors": dict(stream_errors),
        "unexpected": run.unexpected,
        "healthz_probe": {
            "samples": len(probes),
            "failed": sum(1 for ms in probes if ms is None),
            "p50_ms": round(percentile(probe_ok, 0.5), 1) if probe_ok else None,
            "p90_ms": round(percentile(probe_ok, 0.9), 1) if probe_ok else None,
            "p99_ms": round(percentile(probe_ok, 0.99), 1) if probe_ok else None,
            "max_ms": round(max(probe_ok), 1) if probe_ok else None,
            "idle_p50_ms": run.args.idle_probe_ms,
        },
        "through_django_probe": {
            "samples": len(via_django),
            "p50_ms": round(percentile(via_django, 0.5), 1) if via_django else None,
            "p90_ms": round(percentile(via_django, 0.9), 1) if via_django else None,
            "p99_ms": round(percentile(via_django, 0.99), 1) if via_django else None,
        },
        "event_loop_lag": lag,
        "cpu_percent_of_a_core": cpu_means(memory, t_start, t_end),
        "rss_mib": {"after_warmup": round(warm_rss, 1), "after_run": round(end_rss, 1)},
        "checks": checks,
    }


def verdicts(summary: dict, args: argparse.Namespace) -> dict[str, str]:
    """Each pass condition: '' when it holds, else why not."""
    bad_5xx = {k: v for k, v in summary["errors"].items() if k.startswith("5") and not k.startswith("503 ")}
    transport = {k: v for k, v in summary["errors"].items() if k.startswith("0 ")}
    probe = summary["healthz_probe"]
    growth = summary["rss_mib"]["after_run"] / summary["rss_mib"]["after_warmup"] - 1
    checks = summary["checks"]
    return {
        "no 5xx but 503 with Retry-After": (
            f"{bad_5xx} {transport} {summary['unexpected'][:3]}"
            if bad_5xx or transport or summary["unexpected"]
            else ""
        ),
        f"healthz p99 < {args.healthz_p99_ms} ms": (
            ""
            if probe["p99_ms"] is not None and probe["p99_ms"] < args.healthz_p99_ms and not probe["failed"]
            else f"p99 {probe['p99_ms']} ms, {probe['failed']} probes failed"
        ),
        "one usage record per completion": "; ".join(checks["records"]),
        "conversations hold what clients saw": "; ".join(checks["conversations"]),
        f"RSS growth < {args.rss_growth:.0%}": "" if growth < args.rss_growth else f"grew {growth:.1%}",
    }


def consistency(run: LoadRun, env: dict[str, str]) -> dict[str, list[str]]:
    stored = json.loads(manage_shell(env, CHECK_SCRIPT).strip().splitlines()[-1])
    records, problems_r, problems_c = stored["records"], [], []
    answered = [cid for c in run.clients for cid in c.answered]
    for cid in answered:
        if records.get(cid) != 1:
            problems_r.append(f"completion {cid}: {records.get(cid, 0)} records")
    extra = set(records) - set(answered)
    if extra:
        problems_r.append(f"{len(extra)} records for completions no client got")
    for client in run.clients:
        held = stored["conversations"].get(str(client.conversation), [])
        if held != client.seen:
            problems_c.append(
                f"conversation {client.conversation}: {len(held)} stored messages, client saw {len(client.seen)}"
            )
    return {
        "records": problems_r[:10],
        "conversations": problems_c[:10],
        "answered": len(answered),
        "records_found": sum(records.values()),
        "conversations_checked": len(run.clients),
        "messages_checked": sum(len(c.seen) for c in run.clients),
    }


def chart(run: LoadRun, probe: Probe, memory: Memory, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (mem, cpu, lat, thr) = plt.subplots(4, 1, figsize=(10, 12), sharex=True)
    t = [at - run.t0 for at, _w, _r in memory.samples]
    mem.plot(t, [w + r for _at, w, r in memory.samples], label="total")
    mem.plot(t, [w for _at, w, _r in memory.samples], label="daphne")
    mem.plot(t, [r for _at, _w, r in memory.samples], label="runner")
    mem.set_ylabel("RSS (MiB)")
    mem.legend(loc="upper left")
    tc = [at - run.t0 for at, *_ in memory.cpu]
    for column, label in ((1, "daphne"), (2, "runner"), (3, "load clients")):
        cpu.plot(tc, [row[column] for row in memory.cpu], label=label)
    cpu.set_ylabel("CPU (% of a core)")
    cpu.legend(loc="upper left")
    points = [(at - run.t0, ms) for at, ms in probe.samples if ms is not None]
    lat.plot([p[0] for p in points], [p[1] for p in points], ".", markersize=3)
    lat.set_ylabel("/healthz probe (ms)")
    lat.set_yscale("log")
    seconds = defaultdict(Counter)
    for o in run.outcomes:
        bucket = int(o.at // 5) * 5
        seconds[bucket]["ok" if 200 <= o.status < 300 else "error"] += 1
        if o.action in ("answer", "stream", "cached") and 200 <= o.status < 300:
            seconds[bucket]["completions"] += 1
    xs = sorted(seconds)
    thr.plot(xs, [seconds[x]["ok"] / 5 for x in xs], label="answers/s")
    thr.plot(xs, [seconds[x]["completions"] / 5 for x in xs], label="completions/s")
    thr.plot(xs, [seconds[x]["error"] / 5 for x in xs], label="errors/s")
    thr.set_ylabel("per second")
    thr.set_xlabel("seconds (0 = end of warm-up)")
    thr.legend(loc="upper left")
    for axis in (mem, cpu, lat, thr):
        axis.axvspan(min([*t, 0]), 0, color="0.9")
        axis.grid(alpha=0.3)
    fig.suptitle(f"{len(run.clients)} clients, {run.args.seconds} s (warm-up shaded)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def markdown(summary: dict, verdict: dict[str, str]) -> str:
    probe = summary["healthz_probe"]
    lines = [
        f"# Load run: {summary['clients']} clients, {summary['seconds']} s "
        f"after a {summary['warmup_seconds']} s warm-up",
        "",
        f"{summary['requests']} requests ({summary['requests_per_s']}/s), "
        f"{summary['completions_per_s']} completions/s. Chart: load.png.",
        "",
        "| condition | result |",
        "|---|---|",
        *(f"| {name} | {'pass' if not why else 'FAIL: ' + why} |" for name, why in verdict.items()),
        "",
        "| action | requests | ok | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
        *(
            f"| {a} | {r['requests']} | {r['ok']} | {r['p50_ms']} | {r['p99_ms']} |"
            for a, r in summary["actions"].items()
        ),
        "",
        f"`/healthz` probe (curl every 0.5 s): p50 {probe['p50_ms']} ms, p90 {probe['p90_ms']} ms, "
        f"p99 {probe['p99_ms']} ms, max {probe['max_ms']} ms over {probe['samples']} probes "
        f"({probe['failed']} failed); idle p50 {probe['idle_p50_ms']} ms. The server's event loop "
        f"(woken every 0.1 s, {summary['event_loop_lag'].get('wakeups')} times): mean lag "
        f"{summary['event_loop_lag'].get('mean_ms')} ms, p99 at most "
        f"{summary['event_loop_lag'].get('p99_at_most_ms')} ms, "
        f"{summary['event_loop_lag'].get('late_over_50ms', 0):.1%} of wake-ups late by more than 50 ms. "
        f"The same probe through Django's middleware and a DRF view (`OPTIONS /healthz`): "
        f"p50 {summary['through_django_probe']['p50_ms']} ms, p90 {summary['through_django_probe']['p90_ms']} ms, "
        f"p99 {summary['through_django_probe']['p99_ms']} ms.",
        "",
        f"Errors by kind: {summary['errors'] or 'none'}.",
        "",
        f"CPU during the run, in % of one core (2 cores: 200 % in all): {summary['cpu_percent_of_a_core']}.",
        "",
        f"RSS (daphne + runner): {summary['rss_mib']['after_warmup']} MiB after the warm-up, "
        f"{summary['rss_mib']['after_run']} MiB after the run.",
        "",
        f"Checked {summary['checks']['answered']} completions against {summary['checks']['records_found']} "
        f"usage records, {summary['checks']['messages_checked']} messages in "
        f"{summary['checks']['conversations_checked']} conversations.",
    ]
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="llmsite-load-") as data_dir:
        env_extra = {
            "MODELS_DIR": str(ROOT / "data" / "models"),
            "LLM_MODEL": MODEL,
            "LOG_LEVEL": "WARNING",
            "RATELIMIT_FEEDBACK": "100000/m",
            "RATELIMIT_LOGIN": "100000/m",
        }
        print(f"starting the site ({MODEL}) in {data_dir}", flush=True)
        server = start_live_server(Path(data_dir), **env_extra)
        env = {**os.environ, "DATA_DIR": data_dir, "DEBUG": "False", **env_extra}
        try:
            server.wait_ready("/readyz")
            idle = []
            with httpx.Client(base_url=server.url) as http:
                for _ in range(20):
                    started = time.perf_counter()
                    http.get("/healthz")
                    idle.append((time.perf_counter() - started) * 1000)
            args.idle_probe_ms = round(statistics.median(idle), 1)
            print(f"seeding {args.clients} users with API keys and a shared collection", flush=True)
            *secrets, filler_secret, metrics_secret = seed(server, env, args.clients)
            run = LoadRun(args, server, secrets)
            probe = Probe(server.url)
            django_probe = Probe(server.url, "OPTIONS")
            memory = Memory(server.process.pid)
            done = asyncio.Event()
            watcher = asyncio.create_task(memory.watch(done))
            print(f"warm-up {args.warmup} s, then {args.seconds} s measured", flush=True)
            load = asyncio.create_task(run.run())
            filling = asyncio.create_task(fill_kv_cache(server, filler_secret, args.fill))
            await asyncio.sleep(args.warmup)
            await filling
            warm_rss = sum(memory.sample())
            lag_before = await asyncio.to_thread(loop_lag, server, metrics_secret)
            await asyncio.sleep(max(0.0, run.stop_at - time.monotonic()))
            lag = lag_between(lag_before, await asyncio.to_thread(loop_lag, server, metrics_secret))
            await load
            await asyncio.sleep(5)  # the last answers' records and the metrics buffer settle
            end_rss = sum(memory.sample())
            done.set()
            await watcher
            await probe.stop()
            await django_probe.stop()
            checks = consistency(run, env)
        finally:
            server.stop()
    summary = summarise(run, probe, django_probe, memory, warm_rss, end_rss, checks, lag)
    verdict = verdicts(summary, args)
    summary["verdict"] = {name: why or "pass" for name, why in verdict.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "load.md").write_text(markdown(summary, verdict))
    chart(run, probe, memory, out / "load.png")
    print((out / "load.md").read_text())
    return 1 if any(verdict.values()) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=180, help="the measured run, after the warm-up")
    parser.add_argument("--warmup", type=int, default=60, help="load before memory is measured: caches fill")
    parser.add_argument("--healthz-p99-ms", type=float, default=100.0)
    parser.add_argument("--rss-growth", type=float, default=0.10, help="allowed growth after the warm-up")
    parser.add_argument(
        "--fill", type=int, default=16, help="long requests at the warm-up's start (LLM_MAX_BATCH_SIZE)"
    )
    parser.add_argument(
        "--client-nice",
        type=int,
        default=10,
        help="this process's niceness: the clients stand for other machines and yield the CPU to the server",
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    os.nice(args.client_nice)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
