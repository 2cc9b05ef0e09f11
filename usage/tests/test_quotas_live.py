"""Limits hold under concurrency on the real server: 50 requests at once against a budget a few can fit.

One daphne process, then two sharing one database: the counters live in the database, so the
budget holds across processes. The ledger must equal the sum of the usage the clients received,
and the limit's counter must end exactly at the tokens used.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings

pytestmark = [pytest.mark.live_server, pytest.mark.real_model]

BUDGET = 600  # tokens per day: a request holds its prompt (~35 tokens templated) + 12 until it settles
CLIENTS = 50
PASSWORD = "a long pass phrase"


def _login(base_url: str, username: str) -> str:
    with httpx.Client(base_url=base_url, timeout=60) as http:
        http.post("/api/v1/auth/register", json={"username": username, "password": PASSWORD}).raise_for_status()
        tokens = http.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
        tokens.raise_for_status()
        return tokens.json()["access"]


def _ask(base_url: str, token: str, index: int) -> tuple[int, dict | None, httpx.Headers]:
    """One request through one of three entry points: (status, usage the client received, headers)."""
    headers = {"Authorization": f"Bearer {token}"}
    prompt = f"Question {index}: name one colour."
    with httpx.Client(base_url=base_url, timeout=300, headers=headers) as http:
        kind = index % 3
        if kind == 0:
            response = http.post("/api/v1/predict", json={"prompt": prompt, "max_new_tokens": 12, "temperature": 0})
            return response.status_code, response.json().get("usage"), response.headers
        if kind == 1:
            body = {"prompt": prompt, "max_new_tokens": 12, "temperature": 0, "stream": True}
            with http.stream("POST", "/api/v1/predict", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    return response.status_code, None, response.headers
                usage = None
                event = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif line.startswith("data: ") and event == "done":
                        usage = json.loads(line.removeprefix("data: "))["usage"]
                return 200, usage, response.headers
        body = {
            "model": "SmolLM2-135M-Instruct",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 12,
            "temperature": 0,
        }
        response = http.post("/v1/chat/completions", json=body)
        return response.status_code, response.json().get("usage"), response.headers


@pytest.mark.parametrize("processes", [1, 2])
def test_fifty_concurrent_requests_never_cross_a_token_budget_and_the_ledger_equals_what_clients_got(
    live_server_factory, processes
):
    servers = [
        live_server_factory(MODELS_DIR=str(settings.MODELS_DIR), USAGE_DEFAULT_TOKENS_PER_DAY=str(BUDGET))
        for _ in range(processes)
    ]
    for server in servers:
        server.wait_ready("/readyz")  # the model's runner is up: refusals below are the budget's alone
    urls = [server.url for server in servers]
    token = _login(urls[0], "quinn")
    models = httpx.get(urls[0] + "/v1/models", headers={"Authorization": f"Bearer {token}"}).json()["data"]
    assert "SmolLM2-135M-Instruct" in [m["id"] for m in models]

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda i: _ask(urls[i % len(urls)], token, i), range(CLIENTS)))

    statuses = [status for status, _usage, _headers in results]
    assert set(statuses) <= {200, 429}, [
        (status, headers) for status, _u, headers in results if status not in (200, 429)
    ]
    answered = [usage for status, usage, _headers in results if status == 200]
    assert 0 < len(answered) < CLIENTS, statuses
    for status, _usage, headers in results:
        if status == 429:
            assert int(headers["retry-after"]) >= 1

    received = sum(u["prompt_tokens"] + u["completion_tokens"] for u in answered)
    usage = httpx.get(urls[-1] + "/api/v1/usage", headers={"Authorization": f"Bearer {token}"}).json()
    totals = usage["totals"]
    assert totals["requests"] == len(answered)
    assert totals["prompt_tokens"] + totals["completion_tokens"] == received
    assert received <= BUDGET
    (limit,) = [limit for limit in usage["limits"] if limit["kind"] == "tokens_per_day"]
    # Every reservation settled to its real usage: the counter holds exactly what was used.
    assert (limit["limit"], limit["used"]) == (BUDGET, received)
