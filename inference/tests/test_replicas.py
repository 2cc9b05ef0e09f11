"""Replicas of a remote model: least in flight, cooldown, probed back, retried before the first token and never after.

`ReplicaSet` is driven with a fake clock; `ReplicaProvider` talks real HTTP to fake upstreams
(fake_upstream.py) in the OpenAI wire format, one per replica.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from inference.providers.base import GenerationRequest, SamplingParams, StreamEnd, TextDelta
from inference.providers.openai import OpenAIProvider
from inference.providers.remote import HttpOptions, UpstreamError
from inference.providers.replicas import ReplicaProvider, ReplicaSet, public_url
from inference.tests.fake_upstream import FakeUpstream, closed_port_url, json_reply, openai_sse, sse_reply

MODELS = {"object": "list", "data": [{"id": "llama", "object": "model", "owned_by": "me"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def error(message: str = "down", *, permanent: bool = False, retry_after: float | None = None) -> UpstreamError:
    return UpstreamError(message, permanent=permanent, retry_after=retry_after)


def replica_set(n: int = 3, clock: Clock | None = None, **options) -> ReplicaSet:
    return ReplicaSet([(f"p{i}", f"http://r{i}/v1") for i in range(n)], clock=clock or Clock(), **options)


# --- choosing ------------------------------------------------------------------------------------
def test_it_chooses_the_replica_with_the_fewest_requests_in_flight():
    replicas = replica_set(3)
    first, second, third = (replicas.choose() for _ in range(3))
    assert {first.url, second.url, third.url} == {"http://r0/v1", "http://r1/v1", "http://r2/v1"}
    replicas.done(second)
    assert replicas.choose() is second  # the only one with nothing in flight
    replicas.done(first)
    replicas.done(third)
    assert replicas.choose() in (first, third)


def test_it_goes_round_robin_among_replicas_equally_busy():
    replicas = replica_set(3)
    chosen = []
    for _ in range(6):
        replica = replicas.choose()
        chosen.append(replica.index)
        replicas.done(replica)
    assert chosen == [0, 1, 2, 0, 1, 2]


def test_it_skips_replicas_a_request_already_tried_and_says_none_when_all_were():
    replicas = replica_set(2)
    a = replicas.choose()
    b = replicas.choose(skip=[a])
    assert b is not a
    assert replicas.choose(skip=[a, b]) is None


# --- cooldown and probing back -------------------------------------------------------------------
def test_a_failed_replica_is_out_for_the_cooldown_then_due_for_a_probe():
    clock = Clock()
    replicas = replica_set(2, clock, cooldown=10)
    a = replicas.choose()
    replicas.done(a)
    replicas.failed(a, error("connection refused"))
    for _ in range(4):
        chosen = replicas.choose()
        assert chosen is not a
        replicas.done(chosen)
    [health_a, health_b] = replicas.health()
    assert (health_a.state, health_a.healthy, health_a.failures, health_a.last_error) == (
        "cooling_down",
        False,
        1,
        "connection refused",
    )
    assert health_a.retry_in == 10 and health_b.healthy
    clock.now += 9.9
    assert replicas.due() == []
    clock.now += 0.1
    assert replicas.due() == [a]
    assert replicas.health()[0].state == "probing"
    assert replicas.choose(skip=[replicas.members[1]]) is None  # still out while probed
    replicas.probed(a)
    assert replicas.health()[0].healthy
    assert replicas.choose(skip=[replicas.members[1]]) is a


def test_the_cooldown_doubles_with_each_failure_in_a_row_up_to_the_maximum_and_resets_on_success():
    clock = Clock()
    replicas = replica_set(1, clock, cooldown=10, max_cooldown=35)
    [a] = replicas.members
    waits = []
    replicas.failed(a, error())
    for _ in range(3):
        waits.append(replicas.health()[0].retry_in)
        clock.now += waits[-1]
        assert replicas.due() == [a]
        replicas.probed(a, "probe: still down")
    waits.append(replicas.health()[0].retry_in)
    assert waits == [10, 20, 35, 35]
    assert replicas.health()[0].failures == 4
    clock.now += 35
    replicas.due()
    replicas.probed(a)
    replicas.succeeded(a)
    replicas.failed(a, error())
    assert replicas.health()[0].retry_in == 10


def test_answers_broken_by_one_outage_count_as_failures_but_lengthen_the_cooldown_once():
    clock = Clock()
    replicas = replica_set(1, clock, cooldown=10)
    [a] = replicas.members
    running = [replicas.choose() for _ in range(3)]
    for replica in running:
        replicas.failed(replica, error("connection reset"))
        replicas.done(replica)
    [health] = replicas.health()
    assert (health.failures, health.retry_in, health.in_flight) == (3, 10, 0)
    clock.now += 10
    replicas.due()
    replicas.probed(a, "probe: refused")
    assert replicas.health()[0].retry_in == 20  # the next step, not the fourth


def test_a_retry_after_longer_than_the_cooldown_is_honoured():
    replicas = replica_set(1, cooldown=10, max_cooldown=300)
    [a] = replicas.members
    replicas.failed(a, error("rate limited", retry_after=42))
    assert replicas.health()[0].retry_in == 42


def test_the_shown_url_never_carries_credentials_or_a_query():
    assert public_url("https://user:s3cret@gpu1.example:8000/v1/?key=abc#x") == "https://gpu1.example:8000/v1"


# --- the provider, over real HTTP ----------------------------------------------------------------
@pytest.fixture
def upstreams():
    with FakeUpstream() as a, FakeUpstream() as b:
        yield a, b


def provider_for(*urls: str, clock=None, background_probes: bool = False, cooldown: float = 10.0) -> ReplicaProvider:
    http = HttpOptions(connect_timeout=2, read_timeout=5, max_retries=0)
    replicas = [(OpenAIProvider("llama", base_url=url, http=http), url) for url in urls]
    provider = ReplicaProvider(
        "llama",
        replicas,
        cooldown=cooldown,
        background_probes=background_probes,
        clock=clock or Clock(),
        probe_timeout=2,
    )
    provider.load()
    return provider


def ask() -> GenerationRequest:
    return GenerationRequest(prompt="Hello", sampling=SamplingParams(max_new_tokens=8))


async def collect(provider: ReplicaProvider) -> tuple[list[str], StreamEnd | None]:
    texts: list[str] = []
    end = None
    async for event in provider.stream(ask()):
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            end = event
    return texts, end


def test_a_refused_connection_moves_the_answer_to_another_replica_and_takes_the_first_out(upstreams):
    _, b = upstreams
    dead = closed_port_url() + "/v1"
    b.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Hi", " there"])))
    provider = provider_for(dead, b.url + "/v1")
    try:
        completion = provider.generate(ask())
        assert completion.text == "Hi there"
        [down, up] = provider.health()
        assert (down.state, up.state) == ("cooling_down", "up")
        assert "could not connect" in down.last_error and down.failures == 1
        assert (down.in_flight, up.in_flight) == (0, 0)
        b.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Again"])))
        assert provider.generate(ask()).text == "Again"  # straight to the replica in service
        assert len(b.requests_to("/v1/chat/completions")) == 2
    finally:
        provider.close()


async def test_a_stream_whose_replica_fails_before_its_first_token_comes_from_another(upstreams):
    a, b = upstreams
    a.script("POST", "/v1/chat/completions", json_reply(502, {"error": {"message": "bad gateway"}}))
    b.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["One", " two"])))
    provider = provider_for(a.url + "/v1", b.url + "/v1")
    try:
        texts, end = await collect(provider)
        assert texts == ["One", " two"] and end is not None and end.finish_reason == "stop"
        assert [h.state for h in provider.health()] == ["cooling_down", "up"]
        assert "HTTP 502" in provider.health()[0].last_error
    finally:
        provider.close()


async def test_a_stream_that_already_sent_text_ends_with_the_error_and_is_never_retried(upstreams):
    a, b = upstreams
    body = openai_sse(["Par", "tial", " answer"], done=False)
    a.script("POST", "/v1/chat/completions", sse_reply(body, cut=True))
    provider = provider_for(a.url + "/v1", b.url + "/v1")
    texts: list[str] = []
    try:
        with pytest.raises(UpstreamError) as raised:
            async for event in provider.stream(ask()):
                if isinstance(event, TextDelta):
                    texts.append(event.text)
        assert texts == ["Par", "tial", " answer"]
        assert raised.value.code == "upstream_disconnected"
        assert b.requests_to("/v1/chat/completions") == []  # the client saw text: no second answer
        assert provider.health()[0].state == "cooling_down"  # the replica broke: it is out all the same
    finally:
        provider.close()


def test_a_blocking_answer_cut_off_mid_text_is_answered_again_by_another_replica(upstreams):
    a, b = upstreams
    a.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Par", "tial"], done=False), cut=True))
    b.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Whole"])))
    provider = provider_for(a.url + "/v1", b.url + "/v1")
    try:
        assert provider.generate(ask()).text == "Whole"  # nothing reached the client before the answer
    finally:
        provider.close()


def test_an_error_every_replica_would_give_reaches_the_client_and_takes_nothing_out(upstreams):
    a, b = upstreams
    refusal = json_reply(400, {"error": {"type": "invalid_request_error", "message": "max_tokens is too large"}})
    a.script("POST", "/v1/chat/completions", refusal)
    provider = provider_for(a.url + "/v1", b.url + "/v1")
    try:
        with pytest.raises(UpstreamError) as raised:
            provider.generate(ask())
        assert (raised.value.status, raised.value.code) == (400, "upstream_rejected")
        assert b.requests_to("/v1/chat/completions") == []
        assert all(h.healthy for h in provider.health())
    finally:
        provider.close()


def test_with_every_replica_out_it_is_a_503_saying_when_to_try_again(upstreams):
    a, b = upstreams
    for upstream in (a, b):
        upstream.script("POST", "/v1/chat/completions", json_reply(503, {"error": {"message": "overloaded"}}))
    provider = provider_for(a.url + "/v1", b.url + "/v1", cooldown=7)
    try:
        with pytest.raises(UpstreamError) as raised:
            provider.generate(ask())
        assert (raised.value.status, raised.value.code, raised.value.retry_after) == (503, "unavailable", 7)
        assert "every replica of llama is out of service" in raised.value.message
        assert "overloaded" in raised.value.message  # the last failure says why
        with pytest.raises(UpstreamError) as again:  # no replica in service: nothing is sent at all
            provider.generate(ask())
        assert again.value.status == 503
        assert len(a.requests_to("/v1/chat/completions")) == len(b.requests_to("/v1/chat/completions")) == 1
    finally:
        provider.close()


def test_a_rate_limited_replica_stays_out_as_long_as_it_asked(upstreams):
    a, b = upstreams
    a.script(
        "POST", "/v1/chat/completions", json_reply(429, {"error": {"message": "slow down"}}, {"retry-after": "30"})
    )
    b.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Ok"])))
    provider = provider_for(a.url + "/v1", b.url + "/v1", cooldown=5)
    try:
        assert provider.generate(ask()).text == "Ok"
        assert provider.health()[0].retry_in == 30
    finally:
        provider.close()


def test_a_replica_is_probed_back_with_its_model_list_once_its_cooldown_ends(upstreams):
    a, b = upstreams
    clock = Clock()
    a.script("POST", "/v1/chat/completions", json_reply(500, {"error": {"message": "boom"}}))
    b.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["From b"])))
    provider = provider_for(a.url + "/v1", b.url + "/v1", clock=clock, cooldown=10)
    try:
        assert provider.generate(ask()).text == "From b"
        assert provider.probe_due() == 0  # not before its cooldown ends
        clock.now += 10
        a.script("GET", "/v1/models", json_reply(500, {"error": {"message": "still starting"}}))
        assert provider.probe_due() == 1
        assert provider.health()[0].state == "cooling_down" and provider.health()[0].retry_in == 20
        assert "probe" in provider.health()[0].last_error and provider.health()[0].failures == 2
        clock.now += 20
        a.script("GET", "/v1/models", json_reply(200, MODELS))
        assert provider.probe_due() == 1
        assert provider.health()[0].healthy
        a.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["From a"])))
        b.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["From b"])))
        answers = {provider.generate(ask()).text for _ in range(2)}
        assert answers == {"From a", "From b"}  # it takes work again
    finally:
        provider.close()


def test_the_background_prober_puts_a_replica_back_by_itself(upstreams):
    a, b = upstreams
    a.script("POST", "/v1/chat/completions", json_reply(500, {"error": {"message": "boom"}}))
    a.script("GET", "/v1/models", json_reply(200, MODELS))
    b.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Ok"])))
    http = HttpOptions(connect_timeout=2, read_timeout=5, max_retries=0)
    provider = ReplicaProvider(
        "llama",
        [(OpenAIProvider("llama", base_url=u + "/v1", http=http), u + "/v1") for u in (a.url, b.url)],
        cooldown=0.2,
    )
    provider.load()
    try:
        provider.generate(ask())
        deadline = time.monotonic() + 30
        while not provider.health()[0].healthy and time.monotonic() < deadline:
            time.sleep(0.05)
        assert provider.health()[0].healthy
        assert len(a.requests_to("/v1/models")) == 1
    finally:
        provider.close()


async def test_a_client_that_goes_away_is_no_failure_of_the_replica(upstreams):
    a, b = upstreams
    a.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["a", "b", "c", "d"]), chunk_delay=0.2))
    provider = provider_for(a.url + "/v1", b.url + "/v1")
    try:
        events = provider.stream(ask())
        assert isinstance(await anext(events), TextDelta)
        assert sum(h.in_flight for h in provider.health()) == 1
        await events.aclose()
        assert all(h.healthy and h.in_flight == 0 and h.failures == 0 for h in provider.health())
    finally:
        provider.close()


def test_concurrent_answers_spread_over_the_replicas(upstreams):
    a, b = upstreams
    for upstream in (a, b):
        for _ in range(4):
            upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["x", "y"]), chunk_delay=0.3))
    provider = provider_for(a.url + "/v1", b.url + "/v1")

    async def run() -> None:
        await asyncio.gather(*(provider.agenerate(ask()) for _ in range(4)))

    try:
        asyncio.run(run())
        assert len(a.requests_to("/v1/chat/completions")) == len(b.requests_to("/v1/chat/completions")) == 2
    finally:
        provider.close()
