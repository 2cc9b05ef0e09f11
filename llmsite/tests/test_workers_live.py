"""Two server processes of one site on PostgreSQL and Redis agree, seen only through their HTTP and WebSocket APIs.

Workers A and B share the database, the caches and channel layer (Redis, one key prefix), MODELS_DIR and
DATA_DIR, as the workers of docs/deploy.md do; job workers of their own run the background jobs. Each check acts
on one worker and watches the other: documents added and deleted, the default model switched, limits
counted on both together, the response cache, a fine-tuned checkpoint, a conversation over a WebSocket.

Runs in the PostgreSQL + Redis lane (`make test-services`); skipped elsewhere, failed under
SERVICES_REQUIRED=1 (CI) when the services are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.sync.client import connect

from llmsite.testing import ROOT, LiveServer, build_tiny_model, fresh_postgres_database, is_postgres

pytestmark = [pytest.mark.live_server, pytest.mark.workers, pytest.mark.timeout(900)]

PASSWORD = "a long pass phrase"
# Generous: bounded waits for what another process must notice; the documented delays are far shorter
# (docs/deploy.md) and each check prints what it measured.
DEADLINE = 60
# A request that names a model another process has not loaded yet waits for its runner to start.
HTTP_TIMEOUT = 240
# An hour, not a minute: the limiter's windows start at an offset of their own, and an hour rarely rolls over mid-test.
LOGINS_PER_HOUR = 6


def _services_or_skip() -> None:
    missing = []
    if not is_postgres(os.environ.get("DATABASE_URL", "")):
        missing.append("DATABASE_URL is not PostgreSQL")
    if not os.environ.get("CACHE_URL", "").startswith("redis") or not os.environ.get("REDIS_URL"):
        missing.append("CACHE_URL and REDIS_URL are not Redis")
    if missing:
        why = "; ".join(missing) + ": run `make test-services` (scripts/with-services.sh)"
        if os.environ.get("SERVICES_REQUIRED") == "1":
            pytest.fail(why)
        pytest.skip(why)


def wait_for(what: str, check: Callable[[], object], deadline: float = DEADLINE) -> float:
    """Poll `check` until it returns something true; returns the seconds it took."""
    start = time.monotonic()
    while True:
        if check():
            elapsed = time.monotonic() - start
            print(f"\n{what}: {elapsed:.2f} s")
            return elapsed
        if time.monotonic() - start > deadline:
            raise AssertionError(f"{what}: not within {deadline} s")
        time.sleep(0.05)


def manage(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-5000:]}"


class Site:
    """Two workers of one site and the job workers, with a user's and a staff member's logins."""

    def __init__(self, env: dict[str, str], a: LiveServer, b: LiveServer, jobs: list[subprocess.Popen]):
        self.env, self.a, self.b, self.jobs = env, a, b, jobs
        self.user = login(a, "ada")  # a login made on A is honoured by B: one signing key
        self.staff = login(a, "sam", staff_env=env)

    def client(self, server: LiveServer, token: str) -> httpx.Client:
        return httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT, headers={"Authorization": f"Bearer {token}"})


def login(server: LiveServer, username: str, *, staff_env: dict[str, str] | None = None) -> str:
    credentials = {"username": username, "password": PASSWORD}
    if staff_env is not None:
        env = {**staff_env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
        manage(env, "createsuperuser", "--noinput", "--username", username, "--email", f"{username}@example.com")
    else:
        httpx.post(server.url + "/api/v1/auth/register", json=credentials, timeout=DEADLINE).raise_for_status()
    response = httpx.post(server.url + "/api/v1/auth/token", json=credentials, timeout=DEADLINE)
    return response.raise_for_status().json()["access"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    _services_or_skip()
    root = tmp_path_factory.mktemp("workers")
    models = root / "models"
    source = ROOT / "data" / "models" / "SmolLM2-135M-Instruct"
    for name, seed in (("tiny-a", 1), ("tiny-b", 2)):
        try:
            build_tiny_model(models / name, source=source, seed=seed)
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
    env = {
        **os.environ,
        "DATA_DIR": str(root / "data"),
        "MODELS_DIR": str(models),
        "DEBUG": "False",
        "SECRET_KEY": "workers-test-" + "k" * 40,
        "JWT_SIGNING_KEY": "workers-test-jwt-" + "j" * 40,
        "CACHE_KEY_PREFIX": f"workers-{os.getpid()}",
        "LLM_PROVIDER": "hf",
        "LLM_MODEL": "tiny-a",
        "DEVICE": "cpu",
        "LLM_CONFIG_CHECK_SECONDS": "0.5",
        "LLM_EXPORT_AFTER_TRAINING": "False",
        "RATELIMIT_LOGIN": f"{LOGINS_PER_HOUR}/h",
        "JWT_ACCESS_TOKEN_MINUTES": "15",
        "TASKS_WORKER": "external",
    }
    env["DATABASE_URL"] = fresh_postgres_database(env["DATABASE_URL"], env)  # migrated already
    a, b = LiveServer(env), LiveServer(env)
    # The job workers run apart from both servers, as in docs/deploy.md: one per queue.
    jobs_log = (root / "jobs.log").open("w")
    jobs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "db_worker", "--queue-name", queue],
            cwd=ROOT,
            env=env,
            stdout=jobs_log,
            stderr=subprocess.STDOUT,
        )
        for queue in ("default", "training")
    ]
    try:
        a.wait_ready("/readyz")
        b.wait_ready("/readyz")
        yield Site(env, a, b, jobs)
    finally:
        for worker in jobs:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        jobs_log.close()
        a.stop()
        b.stop()


def test_a_document_added_on_one_worker_is_found_on_the_other_and_a_deleted_one_disappears(site):
    text = "The Zephyr-9 valve is serviced every 4,000 hours with torque 31 Nm."
    with site.client(site.a, site.user) as a, site.client(site.b, site.user) as b:

        def found_on_b() -> bool:
            results = b.post("/api/v1/embed/search", json={"query": "Zephyr-9 valve service", "top_k": 3})
            results.raise_for_status()
            return any(hit["text"] == text for hit in results.json()["results"])

        assert not found_on_b()
        added = a.post("/api/v1/embed/add", json={"documents": [{"text": text}], "collection": "manuals"})
        assert added.status_code == 201, added.text
        wait_for("added on A, found on B", found_on_b)

        deleted = a.delete(f"/api/v1/embed/documents/{added.json()['ids'][0]}")
        assert deleted.status_code == 204, deleted.text
        wait_for("deleted on A, gone on B", lambda: not found_on_b())


def test_switching_the_default_model_on_one_worker_applies_on_both(site):
    body = {"prompt": "Hello", "max_new_tokens": 4, "temperature": 1.0, "seed": 3}
    with site.client(site.a, site.staff) as a_staff, site.client(site.b, site.user) as b:
        assert b.post("/api/v1/predict", json=body).raise_for_status().json()["model"] == "tiny-a"
        switched = a_staff.post("/api/v1/providers/active", json={"provider": "hf", "model": "tiny-b"})
        assert switched.status_code == 200, switched.text

        def b_serves_tiny_b() -> bool:
            active = b.get("/api/v1/providers").raise_for_status().json()["active"]
            return active["model"] == "tiny-b" and active["state"] == "ready"

        wait_for("default switched on A, serving on B", b_serves_tiny_b)
        assert b.post("/api/v1/predict", json=body).raise_for_status().json()["model"] == "tiny-b"
        a_staff.post("/api/v1/providers/active", json={"provider": "hf", "model": "tiny-a"}).raise_for_status()
        wait_for("switched back", lambda: b.get("/api/v1/providers").json()["active"]["model"] == "tiny-a")


def _inside_one_minute(seconds_needed: int = 20) -> None:
    """Limits count per calendar minute: start where the checks end before the window rolls over."""
    second = time.gmtime().tm_sec
    if second > 60 - seconds_needed:
        time.sleep(61 - second)


def test_usage_limits_count_requests_on_both_workers_together(site):
    with site.client(site.a, site.staff) as a_staff:
        me = site.client(site.a, site.user).get("/api/v1/auth/me").raise_for_status().json()
        limited = a_staff.put(f"/api/v1/usage/limits/{me['id']}", json={"requests_per_minute": 4})
        assert limited.status_code == 200, limited.text
    _inside_one_minute()
    statuses = []
    with site.client(site.a, site.user) as a, site.client(site.b, site.user) as b:
        for index, client in enumerate([a, b, a, b, a, b]):
            body = {"prompt": f"Count {index}", "max_new_tokens": 2, "temperature": 1.0}
            statuses.append(client.post("/api/v1/predict", json=body).status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]
    with site.client(site.a, site.staff) as a_staff:
        a_staff.put(f"/api/v1/usage/limits/{me['id']}", json={"requests_per_minute": None}).raise_for_status()


def test_the_response_cache_is_shared(site):
    body = {"prompt": "Shared cache?", "max_new_tokens": 6, "temperature": 0}
    with site.client(site.a, site.user) as a, site.client(site.b, site.user) as b:
        first = a.post("/api/v1/predict", json=body)
        second = b.post("/api/v1/predict", json=body)
    assert first.headers["X-Cache"] == "MISS" and second.headers["X-Cache"] == "HIT"
    assert second.json()["text"] == first.json()["text"]


def test_a_websocket_on_one_worker_continues_a_conversation_started_on_the_other(site):
    with site.client(site.a, site.user) as a:
        conversation = a.post("/api/v1/conversations", json={}).raise_for_status().json()["id"]
        a.post(
            "/api/v1/predict", json={"prompt": "First", "conversation": conversation, "max_new_tokens": 3}
        ).raise_for_status()
    with connect(site.b.url.replace("http", "ws") + "/ws/v1/chat/", open_timeout=DEADLINE) as socket:
        socket.send(json.dumps({"type": "auth", "token": site.user}))
        assert json.loads(socket.recv(timeout=DEADLINE))["type"] == "ready"
        socket.send(json.dumps({"type": "generate", "prompt": "Second", "conversation": conversation}))
        while (message := json.loads(socket.recv(timeout=DEADLINE)))["type"] not in ("done", "error"):
            pass
    assert message["type"] == "done", message
    with site.client(site.a, site.user) as a:
        thread = a.get(f"/api/v1/conversations/{conversation}").raise_for_status().json()
    assert [m["content"] for m in thread["messages"] if m["role"] == "user"] == ["First", "Second"]


def test_a_checkpoint_trained_by_the_job_worker_is_served_by_both_workers(site):
    with site.client(site.a, site.staff) as a_staff:
        started = a_staff.post(
            "/api/v1/training/runs",
            json={"name": "tiny-a-ft", "base_model": "tiny-a", "max_steps": 2, "batch_size": 2, "max_length": 64},
        )
        assert started.status_code == 202, started.text
        run = started.json()["id"]

        def finished() -> dict | None:
            status = a_staff.get(f"/api/v1/training/runs/{run}").raise_for_status().json()
            return status if status["status"] in ("succeeded", "failed", "cancelled") else None

        wait_for("trained by the job worker", finished, deadline=300)
        outcome = a_staff.get(f"/api/v1/training/runs/{run}").json()
        assert outcome["status"] == "succeeded", outcome
    body = {"prompt": "Hi", "model": outcome["model"], "max_new_tokens": 3}
    for server in (site.a, site.b):
        with site.client(server, site.user) as client:
            answer = client.post("/api/v1/predict", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["model"] == outcome["model"]


# Last: it uses up the login allowance of 127.0.0.1.
def test_login_rate_limits_count_attempts_on_both_workers_together(site):
    """Alternating wrong logins on A and B hit one shared counter (the fixture's logins count too)."""
    statuses = []
    for attempt in range(2 * LOGINS_PER_HOUR):
        server = site.a if attempt % 2 == 0 else site.b
        wrong = {"username": "nobody-here", "password": f"wrong {attempt}"}
        statuses.append(httpx.post(server.url + "/api/v1/auth/token", json=wrong, timeout=DEADLINE).status_code)
    # Counted per worker, each would let LOGINS_PER_HOUR through: twice 6 attempts, no 429 at all.
    first_refused = statuses.index(429)
    assert 0 < first_refused <= LOGINS_PER_HOUR, statuses
    assert set(statuses[:first_refused]) == {401} and set(statuses[first_refused:]) == {429}, statuses
