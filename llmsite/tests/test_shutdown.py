"""Draining (llmsite/shutdown.py) in this process: what clients see between SIGTERM and the exit.

Refusals, the probes and the bound on each step; streams ended by the grace are in
inference/tests/test_shutdown_streams.py, the serving process itself (`python -m llmsite.serve`, a real
SIGTERM, the exit) in test_shutdown_live.py.
"""

from __future__ import annotations

import asyncio

import pytest

from llmsite.shutdown import GraceExpired, drain

GRACE = 30


@pytest.fixture(autouse=True)
def serving_again():
    yield
    drain.reset()


@pytest.mark.django_db
def test_while_draining_new_requests_get_503_shutting_down_and_the_probes_answer(client):
    drain.begin(GRACE)
    refused = client.get("/api/v1/models")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "shutting_down"
    assert 1 <= int(refused["Retry-After"]) <= GRACE
    openai = client.get("/v1/models").json()["error"]  # /v1 keeps OpenAI's error shape
    assert (openai["code"], openai["type"]) == ("shutting_down", "api_error")

    assert client.get("/healthz").json() == {"status": "ok"}  # the process lives
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "shutting_down"
    assert not ready.json()["checks"]["shutdown"]["ok"]
    assert "shutting down" in ready.json()["checks"]["shutdown"]["detail"]


async def test_a_bounded_step_ends_at_the_deadline_even_when_it_began_before_draining():
    async def step(seconds: float) -> str:
        async with drain.bounded():
            await asyncio.sleep(seconds)
            return "done"

    assert await step(0.01) == "done"  # not draining: no bound
    long_step = asyncio.ensure_future(step(60))
    await asyncio.sleep(0.05)  # it is waiting inside its bound
    drain.begin(0.2)
    with pytest.raises(GraceExpired):
        await asyncio.wait_for(long_step, 30)
    with pytest.raises(GraceExpired):  # a step begun after the deadline ends at once
        await step(60)


async def test_a_timeout_of_the_step_itself_is_not_taken_for_the_grace():
    drain.begin(GRACE)
    with pytest.raises(TimeoutError):
        async with drain.bounded():
            async with asyncio.timeout(0.01):
                await asyncio.sleep(1)
