"""The learning loop, end to end, on a site of its own: rate answers → export → train → automatic evaluation →
arena votes → learn from preferences → promote → the chat page answers from the new default → roll back.

Each step goes through what a user or an operator would use: the REST API, `manage.py` in its own process,
and the chat page in a browser. The site serves tiny models (a two-layer Llama with SmolLM2's tokenizer), so
the whole loop takes a minute or two on two cores; the figures it produces are meaningless, the plumbing is
not. The pages of each step have their own browser tests (evaluation, arena, chat).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.helpers import DESKTOP, PASSWORD, ask, log_in, wait_for_answer
from llmsite.testing import ROOT, LiveServer, build_tiny_model, start_live_server

pytestmark = pytest.mark.e2e

STAFF = "loop-staff"
BASE = "tiny-base"
TUNED = "loop-v1"
PREFERRED = "loop-dpo"
DEADLINE = 300  # seconds for a job (training, evaluation) on a busy 2-core machine


class LoopSite:
    def __init__(self, server: LiveServer, env: dict[str, str]):
        self.server, self.env, self.tokens = server, env, {}

    def register(self) -> str:
        username = f"loop-{uuid.uuid4().hex[:8]}"
        response = httpx.post(
            f"{self.server.url}/api/v1/auth/register", json={"username": username, "password": PASSWORD}
        )
        response.raise_for_status()
        return username

    def api(self, username: str) -> httpx.Client:
        if username not in self.tokens:
            response = httpx.post(
                f"{self.server.url}/api/v1/auth/token", json={"username": username, "password": PASSWORD}
            )
            response.raise_for_status()
            self.tokens[username] = response.json()["access"]
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.tokens[username]}"}, timeout=120
        )

    def manage(self, *args: str) -> str:
        """`manage.py` in its own process, on the site's database and folders."""
        env = {**os.environ, **self.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEADLINE
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def loop_site(chromium, tmp_path_factory) -> Iterator[LoopSite]:
    from django.conf import settings

    models = tmp_path_factory.mktemp("loop-models")
    try:
        build_tiny_model(models / BASE, source=settings.BASE_DIR / "data" / "models" / "SmolLM2-135M-Instruct")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    data_dir = tmp_path_factory.mktemp("loop-site")
    env = {
        "DATA_DIR": str(data_dir),
        "MODELS_DIR": str(models),
        "TRAINING_DATASETS_DIR": str(data_dir / "training"),
        "LLM_PROVIDER": "hf",
        "LLM_MODEL": BASE,
        "DEVICE": "cpu",
        "LLM_DEFAULT_MAX_NEW_TOKENS": "16",  # the tiny model has 256 positions
        "LLM_EXPORT_AFTER_TRAINING": "false",  # served by transformers; the export has its own tests
        "EVALUATION_AUTO_LIMIT": "3",
        "EVALUATION_MAX_NEW_TOKENS": "8",
        "EMBEDDINGS_LOAD_AT_START": "never",
        "RATELIMIT_FEEDBACK": "1000/m",
        "RATELIMIT_LOGIN": "1000/m",
    }
    server = start_live_server(data_dir, **{k: v for k, v in env.items() if k != "DATA_DIR"})
    try:
        server.wait_ready("/readyz")
        site = LoopSite(server, env)
        site.manage("createsuperuser", "--noinput", "--username", STAFF, "--email", "staff@example.com")
        yield site
    finally:
        server.stop()


def wait_for(what: str, probe: Callable[[], Any], deadline: float = DEADLINE) -> Any:
    """probe() until it returns something truthy; generous for a busy machine, and says what it waited for."""
    end = time.monotonic() + deadline
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < end, f"waited {deadline} s for {what}"
        time.sleep(0.5)


def finished(client: httpx.Client, path: str) -> dict | None:
    row = client.get(path).json()
    assert row["status"] not in ("failed", "cancelled"), row
    return row if row["status"] == "succeeded" else None


def default_model(client: httpx.Client) -> str:
    return client.post("/api/v1/predict", json={"prompt": "Hello", "max_new_tokens": 2}).json()["model"]


def test_rate_train_evaluate_compare_promote_roll_back(loop_site, browser):
    from playwright.sync_api import expect

    user = loop_site.register()
    with loop_site.api(user) as api:
        # 1. A user chats and rates the answers: two good, one bad. (Sampled: a tiny random model's greedy
        # answer is blank, and the export rightly skips blank answers.)
        for seed, (prompt, rating) in enumerate([("What is llmsite?", 1), ("How do I start it?", 1), ("2 + 2?", -1)]):
            conversation = api.post("/api/v1/conversations", json={"title": prompt}).json()["id"]
            question = {
                "prompt": prompt,
                "conversation": conversation,
                "temperature": 1.0,
                "seed": seed,
                "max_new_tokens": 8,
            }
            answer = api.post("/api/v1/predict", json=question).json()
            assert answer["text"].strip(), answer
            assert answer["model"] == BASE
            rated = api.post("/api/v1/feedback", json={"rating": rating, "message": answer["message"]})
            assert rated.status_code == 201, rated.text

    # 2. The operator exports the well-rated answers as a training set of the site's.
    export = Path(loop_site.env["TRAINING_DATASETS_DIR"]) / "rated.jsonl"
    export.parent.mkdir(parents=True, exist_ok=True)
    loop_site.manage("feedback", "export", "--out", str(export), "--no-progress")
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(lines) == 2 and all(line["messages"][-1]["role"] == "assistant" for line in lines)

    with loop_site.api(STAFF) as staff:
        # 3. Fine-tune on it (a few steps); the job worker of the server runs it.
        started = staff.post(
            "/api/v1/training/runs",
            json={
                "name": TUNED,
                "base_model": BASE,
                "datasets": ["rated", "dialogue"],
                "max_steps": 2,
                "batch_size": 2,
                "max_length": 128,
            },
        )
        assert started.status_code == 202, started.text
        run = started.json()["id"]
        wait_for("the training run", lambda: finished(staff, f"/api/v1/training/runs/{run}"))

        # 4. The finished run is evaluated against the default without anyone asking.
        def evaluation_of_run() -> dict | None:
            rows = staff.get("/api/v1/evaluations").json()["results"]
            return next((row for row in rows if row["training_run"] == run), None)

        evaluation = wait_for("the automatic evaluation", evaluation_of_run)
        assert (evaluation["model"], evaluation["baseline"], evaluation["source"]) == (TUNED, BASE, "training")
        evaluation = wait_for(
            "the evaluation to end", lambda: finished(staff, f"/api/v1/evaluations/{evaluation['id']}")
        )
        for model in (TUNED, BASE):
            figures = evaluation["metrics"]["models"][model]
            assert figures["eval_loss"] > 0 and figures["questions"] == 3, figures
        qa = [row for row in evaluation["examples"]["results"] if row["kind"] == "qa"]
        assert {row["model"] for row in qa} == {TUNED, BASE} and len(qa) == 6

    # 5. Arena: the user compares the two models blind and votes; the leaderboard counts the votes.
    with loop_site.api(user) as api:
        for vote in ("a", "b", "a"):
            battle = api.post("/api/v1/arena/battles", json={"prompt": "Say something about llmsite.", "max_tokens": 8})
            assert battle.status_code == 201, battle.text
            assert "model_a" not in battle.json() or battle.json()["model_a"] is None
            revealed = api.post(f"/api/v1/arena/battles/{battle.json()['id']}/vote", json={"vote": vote}).json()
            assert {revealed["model_a"], revealed["model_b"]} == {TUNED, BASE}
        board = api.get("/api/v1/arena/leaderboard").json()
        assert {row["model"]: row["votes"] for row in board} == {TUNED: 3, BASE: 3}
        assert all(row["ci_low"] <= row["rating"] <= row["ci_high"] for row in board)

    with loop_site.api(STAFF) as staff:
        # 6. Learn from preferences: a DPO run (the shipped pairs; tiny models' arena answers are mostly blank).
        started = staff.post(
            "/api/v1/training/runs",
            json={
                "name": PREFERRED,
                "base_model": BASE,
                "method": "dpo",
                "datasets": ["preferences"],
                "max_steps": 1,
                "batch_size": 2,
                "max_length": 128,
            },
        )
        assert started.status_code == 202, started.text
        dpo = wait_for("the DPO run", lambda: finished(staff, f"/api/v1/training/runs/{started.json()['id']}"))
        assert dpo["method"] == "dpo"

        # 7. Promote the fine-tuned model, with the evaluation that justified it.
        promoted = staff.post(
            f"/api/v1/models/{TUNED}/promote",
            json={"evaluation": evaluation["id"], "reason": "evaluated after training"},
        )
        assert promoted.status_code == 201, promoted.text
        assert promoted.json()["previous"]["model"] == BASE
        assert default_model(staff) == TUNED

    # 8. The chat page answers from the new default.
    context = browser.new_context(base_url=loop_site.server.url, viewport=DESKTOP, reduced_motion="reduce")
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        log_in(page, user)
        ask(page, "Hello from the loop")
        expect(wait_for_answer(page).locator(".meta")).to_contain_text(TUNED)
    finally:
        context.close()

    # 9. Roll back from the command line; every server follows the default within seconds.
    out = loop_site.manage("promote", "--rollback", "--reason", "back to the base model")
    assert BASE in out
    with loop_site.api(STAFF) as staff:
        wait_for("the rollback to reach the server", lambda: default_model(staff) == BASE, deadline=120)
        log = staff.get("/api/v1/models/promotions").json()
    assert [row["kind"] for row in log["results"]][:2] == ["rollback", "promote"]
    assert log["default"]["id"] == BASE and log["results"][1]["evaluation"] == evaluation["id"]
