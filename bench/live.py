"""A throwaway llmsite for benchmarks: its own DATA_DIR, a superuser, daphne on a free port.

with LiveSite(LLM_MODEL="SmolLM2-135M-Instruct") as site:
    http = site.client()          # httpx.Client, authenticated with a JWT
    site.token                    # the access token, for WebSockets
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
USERNAME = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class LiveSite:
    def __init__(self, **extra_env: str):
        self.extra_env = extra_env
        self.password = secrets.token_urlsafe(16)

    def __enter__(self) -> LiveSite:
        self._tmp = tempfile.TemporaryDirectory(prefix="llmsite-bench-")
        data_dir = self._tmp.name
        self.env = {
            **os.environ,
            "DATA_DIR": data_dir,
            "MODELS_DIR": str(ROOT / "data" / "models"),
            "DEBUG": "False",
            "LOG_LEVEL": "WARNING",
            # A benchmark is not abuse: lift the per-user limits.
            "RATELIMIT_LOGIN": "1000/m",
            "DJANGO_SUPERUSER_PASSWORD": self.password,
            **self.extra_env,
        }
        self.manage("migrate", "--noinput", "-v0")
        self.manage("createsuperuser", "--noinput", "--username", USERNAME, "--email", "bench@example.com")
        self._log = open(Path(data_dir) / "daphne.log", "w+")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "llmsite.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        try:
            self._wait_ready()
            with httpx.Client(base_url=self.url, timeout=30) as http:
                response = http.post("/api/v1/auth/token", json={"username": USERNAME, "password": self.password})
                response.raise_for_status()
                self.token = response.json()["access"]
        except BaseException:
            self.__exit__()
            raise
        return self

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True)

    def _wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.server.poll() is not None:
                self._log.seek(0)
                raise RuntimeError(f"daphne did not become ready:\n{self._log.read()[-3000:]}")
            time.sleep(0.3)

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {self.token}"})

    def __exit__(self, *exc: object) -> None:
        self.server.terminate()
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()
        self._log.close()
        self._tmp.cleanup()
