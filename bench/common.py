"""What every benchmark section shares: the model, the prompts, machine and load snapshots, summaries."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MODEL = "SmolLM2-135M-Instruct"
MODEL_DIR = ROOT / "data" / "models" / MODEL

TOPICS = [
    "a dragon who learns to cook",
    "a lighthouse keeper during a storm",
    "a robot that paints portraits",
    "two rival bakers in Lyon",
    "a cat that runs a bookshop",
    "an astronaut growing tomatoes on Mars",
    "a detective who solves crimes with music",
    "a village that lives on a glacier",
    "a librarian who collects lost maps",
    "a train that never stops",
    "a gardener on a space station",
    "a clockmaker who repairs time",
    "a young violinist in Vienna",
    "a fox who guards a vineyard",
    "a pirate who fears the sea",
    "a teacher in a floating school",
]


def story_prompt(index: int) -> str:
    """Distinct prompts (so no answer comes from a cache) that keep a small model talking."""
    return f"Write a long, detailed story about {TOPICS[index % len(TOPICS)]}. (#{index})"


def machine() -> dict:
    import torch

    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_snapshot() -> dict:
    """The load average and the busiest processes now: figures taken under load from others are suspect."""
    one, five, fifteen = os.getloadavg()
    top: list[str] = []
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True, timeout=5
        ).stdout
        me = os.getpid()
        for line in out.splitlines():
            pid, cpu, args = line.split(None, 2)
            if float(cpu) >= 5 and int(pid) != me:
                top.append(f"{float(cpu):.0f}% {args[:100]}")
            if len(top) == 5:
                break
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return {"at": time.strftime("%H:%M:%S"), "loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)], "top": top}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    """mean, p50 (median), p95 of `values`, rounded."""
    if not values:
        return {"mean": None, "p50": None, "p95": None}
    return {
        "mean": round(statistics.fmean(values), 2),
        "p50": round(percentile(values, 0.5), 2),
        "p95": round(percentile(values, 0.95), 2),
    }


def peak_rss_mib(pid: int) -> float | None:
    """The high-water mark of a process's resident memory (VmHWM), in MiB; None when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def rss_tree_mib(pid: int) -> dict[str, float]:
    """Resident memory now of a server and its runner processes (children), in MiB."""
    import psutil

    try:
        server = psutil.Process(pid)
        children = server.children(recursive=True)
        own = server.memory_info().rss
    except psutil.Error:
        return {"server": 0.0, "runners": 0.0, "total": 0.0}
    runners = 0
    for child in children:
        with contextlib.suppress(psutil.Error):
            runners += child.memory_info().rss
    mib = 2**20
    return {"server": round(own / mib, 1), "runners": round(runners / mib, 1), "total": round((own + runners) / mib, 1)}


def peak_rss_tree_mib(pid: int) -> float | None:
    """The high-water marks (VmHWM) of a server and its live runner processes, added up, in MiB."""
    import psutil

    total = peak_rss_mib(pid)
    if total is None:
        return None
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return total
    return round(total + sum(peak_rss_mib(child.pid) or 0 for child in children), 1)
