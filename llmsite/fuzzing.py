"""`python -m llmsite.fuzzing` (`make fuzz`): schemathesis against every operation of `/api/schema/`.

A throw-away daphne (a fresh data folder and database, the real local model answering a few
tokens) is fuzzed twice, as an ordinary user with an API key and as staff with a login, with
the checks `not_a_server_error`, `status_code_conformance` and `response_schema_conformance`.
Each run is bounded in time; a failed check makes the exit status non-zero. docs/testing.md
says what it covers and how to reproduce a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from llmsite.testing import ROOT, LiveServer, start_live_server

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
PASSWORD = "fuzzing pass phrase 42"
STAFF = "fuzz-staff"

# The server under test: the real model with short answers, limits out of the fuzzer's way (it must
# reach the handlers, not the rate limiter), access tokens that outlive the run, and training runs
# that queue without running (a run would take the machine's cores for minutes; the API starts and
# cancels runs, and the trainer has its own tests).
SERVER_ENV = {
    "LLM_MAX_NEW_TOKENS": "8",
    "LLM_DEFAULT_MAX_NEW_TOKENS": "8",
    "RATELIMIT_LOGIN": "100000/m",
    "RATELIMIT_FEEDBACK": "100000/m",
    "JWT_ACCESS_TOKEN_MINUTES": "15",
    "TASKS_WORKER": "external",  # and none started: runs stay queued
}

# Where generated requests name an object: half the time one that exists (the rest are generated,
# so unknown ids are fuzzed too), else nearly every such request would be a 404.
BINDINGS = {
    "path.conversation_id": "conversation",
    "path.document_id": "document",
    "path.run_id": "run",
    "path.user_id": "user",
    "path.key_id": "key",
    "path.name": "collection",
    "path.model": "model",
    "body.conversation": "conversation",
    "body.message": "message",
    "body.completion": "completion",
    "body.collection": "collection",
    "body.model": "model",
}
# Some operations point elsewhere. Deleting what the others point at would leave them 404 for the rest
# of the run: deletes get objects of their own. /v1/embeddings serves the embedding model only.
OPERATION_BINDINGS = {
    "conversations_delete": {"path.conversation_id": "conversation_to_delete"},
    "embed_document_delete": {"path.document_id": "document_to_delete"},
    "v1_embeddings_create": {"body.model": "embedding_model"},
}
# The readiness probe answers 503 while a model loads, which the staff run brings about (switching and
# unloading models): its documented answer, not a server error. Every other 5xx fails the run.
READINESS = "readyz_retrieve"
EXPECT_503 = 'checks = { not_a_server_error = { expected-statuses = ["2xx", "3xx", "4xx", 503] } }'


@dataclass
class Principal:
    """Who a run fuzzes as: its Authorization header, the ids of what it may touch, per-operation credentials."""

    name: str
    authorization: str
    ids: dict[str, list] = field(default_factory=dict)
    operation_authorization: dict[str, str] = field(default_factory=dict)

    def config(self) -> str:
        """schemathesis.toml for this principal's run."""
        lines = [f"headers = {{ Authorization = {json.dumps(self.authorization)} }}", "", "[parameters]"]
        for key, name in BINDINGS.items():
            lines.append(f'"{key}" = {_binding(name)}')
        for name, values in self.ids.items():
            lines += ["", f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
        operations: dict[str, list[str]] = {READINESS: [EXPECT_503]}
        for operation_id, authorization in self.operation_authorization.items():
            header = f"headers = {{ Authorization = {json.dumps(authorization)} }}"
            operations.setdefault(operation_id, []).append(header)
        for operation_id, bindings in OPERATION_BINDINGS.items():
            bound = ", ".join(f'"{key}" = {_binding(name)}' for key, name in bindings.items())
            operations.setdefault(operation_id, []).append(f"parameters = {{ {bound} }}")
        for operation_id, settings in sorted(operations.items()):
            lines += ["", "[[operations]]", f'include-operation-id = "{operation_id}"', *settings]
        return "\n".join(lines) + "\n"


def _binding(dictionary: str) -> str:
    return f'{{ dictionary = "{dictionary}", probability = 0.5 }}'


def _client(server: LiveServer, authorization: str | None = None) -> httpx.Client:
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=120)


def _ok(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response.json()


def _register_and_login(server: LiveServer, username: str) -> str:
    with _client(server) as http:
        _ok(http.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD}))
    return _login(server, username)


def _login(server: LiveServer, username: str) -> str:
    with _client(server) as http:
        tokens = _ok(http.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD}))
    return f"Bearer {tokens['access']}"


def _own_data(server: LiveServer, principal: Principal) -> None:
    """A conversation with an answer, feedback on it, a collection with a document: ids for the bindings."""
    collection = f"{principal.name}-notes"
    with _client(server, principal.authorization) as http:
        system = [{"role": "system", "content": "Answer briefly."}]
        conversation = _ok(http.post("/api/v1/conversations", json={"title": "fuzzing", "messages": system}))
        doomed = _ok(http.post("/api/v1/conversations", json={"title": "to delete"}))
        ask = {"prompt": "Say hello.", "conversation": conversation["id"], "temperature": 0}
        answer = _ok(http.post("/api/v1/predict", json=ask))
        _ok(http.post("/api/v1/feedback", json={"rating": 1, "message": answer["message"]}))
        documents = [
            {"text": "Paris is the capital of France.", "metadata": {"source": "fuzzing"}},
            {"text": "This document is there to be deleted."},
        ]
        added = _ok(http.post("/api/v1/embed/add", json={"collection": collection, "documents": documents}))
        models = _ok(http.get("/api/v1/models"))["data"]
    principal.ids.update(
        conversation=[conversation["id"]],
        message=[answer["message"]],
        completion=[answer["id"]],
        conversation_to_delete=[doomed["id"]],
        document=added["ids"][:1],
        document_to_delete=added["ids"][1:],
        collection=[collection],
        model=[row["id"] for row in models if row["kind"] != "embedding"],
        embedding_model=[row["id"] for row in models if row["kind"] == "embedding"],
    )


def prepare(server: LiveServer, data_dir: Path) -> list[Principal]:
    """The user (an API key) and staff (a login: API keys never act as staff), each owning a little data."""
    user_login = _register_and_login(server, "fuzz-user")
    spare_login = _register_and_login(server, "fuzz-spare")
    env = {**os.environ, "DATA_DIR": str(data_dir), "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    command = ["manage.py", "createsuperuser", "--noinput", "--username", STAFF, "--email", "staff@example.com"]
    subprocess.run([sys.executable, *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)

    with _client(server, user_login) as http:
        key = _ok(http.post("/api/v1/auth/keys", json={"name": "fuzzing"}))["key"]
    user = Principal("user", f"Bearer {key}")
    staff = Principal("staff", _login(server, STAFF))
    with _client(server, spare_login) as http:
        spare_id = _ok(http.get("/api/v1/auth/me"))["id"]
        spare_keys = [_ok(http.post("/api/v1/auth/keys", json={"name": f"spare {i}"}))["id"] for i in range(3)]
    with _client(server, staff.authorization) as http:
        run = _ok(http.post("/api/v1/training/runs", json={"name": "fuzz-run", "max_steps": 1}))

    for principal in (user, staff):
        _own_data(server, principal)
        # User ids name the spare user: limits set on it never throttle the run.
        principal.ids.update(run=[run["id"]], user=[spare_id], key=spare_keys)
    # Revoking the key in use would leave the rest of the user's run at 401: that operation runs as
    # the spare user instead (a login, which revoking keys leaves valid), on the spare user's keys.
    user.operation_authorization["auth_keys_revoke"] = spare_login
    return [user, staff]


@dataclass
class Outcome:
    name: str
    exit_code: int
    generated: int
    failures: int
    seconds: float


def fuzz(
    server: LiveServer, principal: Principal, folder: Path, *, max_time: int, workers: int, seed: int | None
) -> Outcome:
    """One schemathesis run over every operation as `principal`; its output goes to stdout."""
    config = folder / f"{principal.name}.toml"
    config.write_text(principal.config())
    reports = folder / f"reports-{principal.name}"
    command = [
        *(str(Path(sys.executable).parent / "st"), "--config-file", str(config)),
        *("run", f"{server.url}/api/schema/", "--url", server.url),
        *("--checks", CHECKS, "--max-time", str(max_time), "--workers", str(workers)),
        *("--report", "json", "--report-dir", str(reports), "--no-color"),
        # Generous: switching the active model (staff) waits for it to load.
        *("--request-timeout", "120"),
        *(("--seed", str(seed)) if seed is not None else ()),
    ]
    print(f"\n=== fuzzing as {principal.name} ({max_time} s) ===", flush=True)
    code = subprocess.run(command, cwd=folder).returncode
    found = list(reports.glob("*.json"))
    if not found:  # schemathesis stopped before testing (a bad schema or configuration): its output says why
        return Outcome(principal.name, code or 1, 0, 0, 0.0)
    report = json.loads(found[0].read_text())
    cases = report["test_cases"]
    return Outcome(principal.name, code, cases["generated"], cases["with_failures"], report["running_time"])


ACCESS_LINE = re.compile(r"^\S+:\d+ - - \[")  # daphne's access log: one line per request


def server_errors(log: str) -> str:
    """What the server logged besides its access lines: the tracebacks behind server errors."""
    return "\n".join(line for line in log.splitlines() if not ACCESS_LINE.match(line))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=int, default=100, help="seconds of fuzzing per run (default 100)")
    # One worker by default: schemathesis's workers are threads, and two of them describing a strategy
    # at once race in Python's linecache (hypothesis reads lambda sources while another thread prunes
    # the cache), which schemathesis reports as an intermittent "Runtime Error" on a random operation.
    parser.add_argument("--workers", type=int, default=1, help="concurrent schemathesis workers (default 1)")
    parser.add_argument("--only", choices=["user", "staff"], help="fuzz as this principal only")
    parser.add_argument("--seed", type=int, help="schemathesis's seed, to generate a failed run's cases again")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="llmsite-fuzz-") as tmp:
        folder = Path(tmp)
        data_dir = folder / "data"
        for name in [name for name in os.environ if name.startswith("USAGE_DEFAULT_")]:
            del os.environ[name]  # no usage limits by default: the fuzzer must reach the handlers
        models = os.environ.get("MODELS_DIR") or str(ROOT / "data" / "models")
        server = start_live_server(data_dir, MODELS_DIR=models, **SERVER_ENV)
        try:
            server.wait_ready("/readyz")
            outcomes = [
                fuzz(server, principal, folder, max_time=args.max_time, workers=args.workers, seed=args.seed)
                for principal in prepare(server, data_dir)
                if args.only in (None, principal.name)
            ]
        finally:
            log = server.log()
            server.stop()
    if any(o.exit_code for o in outcomes):
        print("\n=== the server's log, without its access lines ===")
        print(server_errors(log))
    print("\n=== schemathesis: generated test cases ===")
    for outcome in outcomes:
        verdict = "ok" if outcome.exit_code == 0 else f"FAILED (exit {outcome.exit_code})"
        print(
            f"{outcome.name:>6}: {outcome.generated} cases, {outcome.failures} failing, "
            f"{outcome.seconds:.0f} s: {verdict}"
        )
    print(f" total: {sum(o.generated for o in outcomes)} cases")
    return 0 if all(o.exit_code == 0 for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
