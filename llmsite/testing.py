"""Test support shared by every app: a real daphne serving llmsite on a free port."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TEST_PASSWORD = "a long pass phrase"  # noqa: S105  (accounts of throw-away test servers)


class LiveServer:
    """A daphne process serving llmsite on a free port, as `make run` would (`python -m llmsite.serve`)."""

    def __init__(self, env: dict[str, str], log_path: Path | None = None, *, port: int | None = None):
        self.env = env
        # `port`: serve where a server that was stopped or killed served (a restart, as a process manager would).
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one blocks daphne.
        self.log_path = log_path or Path(env.get("DATA_DIR") or tempfile.gettempdir()) / f"daphne-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llmsite.serve", "-b", "127.0.0.1", "-p", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def query(self, sql: str, params: tuple = ()) -> list[tuple[Any, ...]]:
        """Rows of a query on the server's own database (SQLite file or PostgreSQL); placeholders are `%s`."""
        url = self.env.get("DATABASE_URL", "")
        if is_postgres(url):
            import psycopg

            with psycopg.connect(url) as db:
                # Without parameters the text is sent as it is (a `%` in a LIKE pattern stays a `%`).
                return db.execute(sql, params or None).fetchall()
        with sqlite3.connect(Path(self.env["DATA_DIR"]) / "db.sqlite3") as db:
            return db.execute(sql.replace("%s", "?"), params).fetchall()

    def create_api_key(self, username: str = "ada", *, password: str = TEST_PASSWORD, name: str = "tests") -> str:
        """Register `username` through the API and return a new personal API key of theirs (what a client is given)."""
        account = {"username": username, "password": password}
        with httpx.Client(base_url=self.url, timeout=120) as http:
            http.post("/api/v1/auth/register", json=account).raise_for_status()
            access = http.post("/api/v1/auth/token", json=account).json()["access"]
            created = http.post("/api/v1/auth/keys", json={"name": name}, headers={"Authorization": f"Bearer {access}"})
            created.raise_for_status()
        return created.json()["key"]

    def log(self) -> str:
        """What the server printed so far (for failure messages)."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    # Generous: the server answers once its model's runner has loaded (a fresh interpreter importing
    # torch, transformers and OpenVINO), which takes seconds alone and much longer on a busy 2-core machine.
    def wait_ready(self, path: str = "/healthz", timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited early:\n{self.log()[-5000:]}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise TimeoutError(f"daphne did not answer {path} within {timeout} s")

    # SIGTERM drains: answers still running get the shutdown grace (SHUTDOWN_GRACE_SECONDS) before they end.
    def stop(self, timeout: float = 60) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://", "pgsql://"))


def database_url() -> str:
    """This test's database (SQLite, or the test database on PostgreSQL) as DATABASE_URL spells it,
    for a process of its own (a worker, a process killed on purpose) working on the same data."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = f"{quote(db['USER'] or '')}:{quote(db['PASSWORD'] or '')}@" if db["USER"] else ""
        return f"postgres://{auth}{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def _migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)


_postgres_templates: dict[str, str] = {}


def fresh_postgres_database(url: str, env: dict[str, str]) -> str:
    """A new, migrated database on the server of `url`; returns its URL.

    Each live server on PostgreSQL gets a database of its own, as it gets a fresh SQLite file otherwise.
    The first one is migrated and kept as a template; the others are copies of it, which takes a
    fraction of a second instead of running every migration again.
    """
    import psycopg

    parts = urlsplit(url)
    admin_url = parts._replace(path="/postgres").geturl()
    template = _postgres_templates.get(url)
    if template is None:
        template = f"live_template_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(admin_url, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{template}"')
        _migrate({**env, "DATABASE_URL": parts._replace(path=f"/{template}").geturl()})
        _postgres_templates[url] = template
    name = f"live_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return parts._replace(path=f"/{name}").geturl()


def isolated_backends(env: dict[str, str], given: Any = ()) -> dict[str, str]:
    """Settings that give a live server state of its own on shared PostgreSQL and Redis servers.

    On the default backends (a SQLite file and local memory in the server's DATA_DIR) a fresh data
    folder is a fresh site; on PostgreSQL and Redis it takes a database and a key prefix of its own.
    Servers meant to share state (several workers of one site) are given the same values.
    """
    extra: dict[str, str] = {}
    if is_postgres(env.get("DATABASE_URL", "")) and "DATABASE_URL" not in given:
        extra["DATABASE_URL"] = fresh_postgres_database(env["DATABASE_URL"], env)
    if (env.get("CACHE_URL", "").startswith("redis") or env.get("REDIS_URL")) and "CACHE_KEY_PREFIX" not in given:
        extra["CACHE_KEY_PREFIX"] = f"live-{secrets.token_hex(4)}"
    return extra


_site_backends: dict[Path, dict[str, str]] = {}


_sqlite_template: Path | None = None


def fresh_sqlite_database(path: Path, env: dict[str, str]) -> None:
    """A migrated SQLite file at `path`, copied from one migrated once per test process.

    A copy takes milliseconds; `manage.py migrate` in a new interpreter takes seconds, and a test run
    starts dozens of live servers. The migrations read no setting, so one template serves every server.
    """
    global _sqlite_template
    if _sqlite_template is None or not _sqlite_template.is_file():
        folder = Path(tempfile.mkdtemp(prefix="llmsite-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template_env = {key: value for key, value in env.items() if key != "DATABASE_URL"}
        _migrate({**template_env, "DATA_DIR": str(folder)})
        _sqlite_template = folder / "db.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The backup API copies a consistent database whatever journal mode the template was left in.
    source, copy = sqlite3.connect(_sqlite_template), sqlite3.connect(path)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()


def start_live_server(data_dir: Path, **extra_env: str) -> LiveServer:
    """Migrate a fresh database in `data_dir` and serve it with DEBUG off, as `make run` would."""
    env = {**os.environ, "DATA_DIR": str(data_dir), "DEBUG": "False", **extra_env}
    # Servers on one data folder are one site (its SQLite file): on PostgreSQL and Redis they share too.
    backends = _site_backends.get(data_dir.resolve())
    restart = backends is not None
    if backends is None:
        backends = _site_backends[data_dir.resolve()] = isolated_backends(env, given=extra_env)
    env.update(backends)
    sqlite_file = data_dir / "db.sqlite3"
    if "DATABASE_URL" not in backends:  # a PostgreSQL database of the site's own is a migrated copy already
        if env.get("DATABASE_URL"):
            _migrate(env)  # a database the test chose
        elif not sqlite_file.exists():
            fresh_sqlite_database(sqlite_file, env)
        elif not restart:
            _migrate(env)  # a file the test set up itself; a restart on this site's own file needs none
    server = LiveServer(env)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def build_tiny_model(folder: Path, *, source: Path, seed: int = 1, hidden_size: int = 64) -> Path:
    """A 2-layer random Llama with SmolLM2's real tokenizer and chat template, saved like a prepared model.

    Fast tests load it through the same code as the real model. Its context window is 256 tokens,
    so "prompt too long" is cheap to provoke. Raises FileNotFoundError without the tokenizer.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if not (source / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer in {source}; run manage.py prepare_models")
    folder.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
