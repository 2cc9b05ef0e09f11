"""What both remote providers share (remote.py): retries, timeouts, upstream errors, cancellation, pooling.

Everything goes through httpx's real transport to a fake upstream on a free port.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import httpx
import pytest

from inference.providers import remote
from inference.providers.anthropic import AnthropicProvider
from inference.providers.base import GenerationRequest, TextDelta
from inference.providers.openai import OpenAIProvider
from inference.providers.remote import HttpOptions, UpstreamError, parse_retry_after, retry_delay
from inference.tests.fake_upstream import Reply, closed_port_url, json_reply, openai_sse, sse_reply

KEY = "sk-secret-0123456789abcdef"
FAST = HttpOptions(connect_timeout=2, read_timeout=5, max_retries=2, backoff=0.01, max_retry_wait=2)
# The read-timeout tests hold on a busy machine: a prompt reply has a whole second to arrive, and a
# stalled one stays silent for far longer (the fake upstream's stop() ends the silence at teardown).
PATIENT = replace(FAST, read_timeout=1.0)
SILENCE = 60.0
PATH = "/v1/chat/completions"
HELLO = GenerationRequest(prompt="Say hello.")


def openai(url: str, http: HttpOptions = FAST) -> OpenAIProvider:
    provider = OpenAIProvider("gpt-test", api_key=KEY, base_url=f"{url}/v1", http=http)
    provider.load()
    return provider


@pytest.fixture
def gpt(upstream):
    provider = openai(upstream.url)
    yield provider
    provider.close()


@pytest.fixture
def retry_waits(monkeypatch) -> list[float | None]:
    """The waits the providers choose after each failed attempt, in order (None: give up)."""
    chosen: list[float | None] = []

    def recorded(options: HttpOptions, attempt: int, error: UpstreamError) -> float | None:
        chosen.append(retry_delay(options, attempt, error))
        return chosen[-1]

    monkeypatch.setattr(remote, "retry_delay", recorded)
    return chosen


def server_error(status: int, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(status, {"error": {"message": f"upstream said {status}", "type": "server_error"}}, headers)


# --- retries ------------------------------------------------------------------------------------
def test_a_500_then_success_is_retried_transparently(gpt, upstream):
    upstream.script("POST", PATH, server_error(500), sse_reply(openai_sse(["ok"])))
    assert gpt.generate(HELLO).text == "ok"
    assert len(upstream.seen) == 2


async def test_a_429_waits_as_long_as_retry_after_says(gpt, upstream, retry_waits):
    upstream.script("POST", PATH, server_error(429, {"retry-after": "1"}), sse_reply(openai_sse(["ok"])))
    started = time.monotonic()
    events = [event async for event in gpt.stream(HELLO)]
    waited = time.monotonic() - started
    assert events[0] == TextDelta("ok")
    assert len(upstream.seen) == 2
    assert retry_waits == [1.0]  # Retry-After's second, not FAST's 10 ms backoff
    assert waited >= 0.9  # and it did wait it (only a lower bound: a busy machine makes waits longer, never shorter)


def test_a_retry_after_beyond_the_longest_wait_fails_at_once_as_503(gpt, upstream, retry_waits):
    upstream.script("POST", PATH, server_error(429, {"retry-after": "120"}), sse_reply(openai_sse(["never"])))
    with pytest.raises(UpstreamError) as caught:
        gpt.generate(HELLO)
    assert retry_waits == [None]  # it gave up without waiting
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (503, "upstream_rate_limited", 120)
    assert len(upstream.seen) == 1


def test_overload_529_is_retried_max_retries_times_then_is_a_503(gpt, upstream):
    upstream.script("POST", PATH, *[server_error(529) for _ in range(4)])
    with pytest.raises(UpstreamError) as caught:
        gpt.generate(HELLO)
    assert caught.value.status == 503
    assert len(upstream.seen) == 3  # the first try and max_retries=2


def test_a_persistent_500_becomes_a_502_with_the_upstream_message(gpt, upstream):
    upstream.script("POST", PATH, *[server_error(500) for _ in range(3)])
    with pytest.raises(UpstreamError) as caught:
        gpt.generate(HELLO)
    assert caught.value.status == 502
    assert "HTTP 500: server_error: upstream said 500" in caught.value.message


def test_a_400_is_never_retried(gpt, upstream):
    body = {"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}
    upstream.script("POST", PATH, json_reply(400, body), sse_reply(openai_sse(["never"])))
    with pytest.raises(UpstreamError) as caught:
        gpt.generate(HELLO)
    assert caught.value.status == 400
    assert len(upstream.seen) == 1


def test_backoff_grows_exponentially_with_jitter_and_is_bounded():
    options = HttpOptions(backoff=1, max_retry_wait=5, max_retries=10)
    busy = UpstreamError("busy")
    for attempt, full in enumerate([1, 2, 4, 5, 5]):
        delays = {retry_delay(options, attempt, busy) for _ in range(20)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1  # jittered
    assert retry_delay(options, 10, busy) is None
    assert retry_delay(options, 0, UpstreamError("bad key", permanent=True)) is None


def test_retry_after_is_read_in_seconds_milliseconds_and_as_a_date():
    assert parse_retry_after(httpx.Headers({"retry-after": "3"})) == 3
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250", "retry-after": "1"})) == 0.25
    assert parse_retry_after(httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0  # past
    assert parse_retry_after(httpx.Headers({"retry-after": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None


# --- connection failures and timeouts ---------------------------------------------------------
def test_a_connection_refused_is_retried_then_a_502_naming_the_host():
    provider = openai(closed_port_url())
    try:
        with pytest.raises(UpstreamError) as caught:
            provider.generate(HELLO)
    finally:
        provider.close()
    assert (caught.value.status, caught.value.code) == (502, "upstream_unreachable")
    assert "could not connect to openai at 127.0.0.1:" in caught.value.message


def test_a_read_timeout_before_any_byte_is_retried_then_succeeds(upstream):
    provider = openai(upstream.url, PATIENT)
    upstream.script("POST", PATH, Reply(delay_before=SILENCE), sse_reply(openai_sse(["ok"])))
    try:
        assert provider.generate(HELLO).text == "ok"
    finally:
        provider.close()
    assert len(upstream.seen) == 2


async def test_read_timeouts_that_persist_are_a_504(upstream):
    provider = openai(upstream.url, replace(FAST, read_timeout=0.2, max_retries=1))
    upstream.script("POST", PATH, Reply(delay_before=SILENCE), Reply(delay_before=SILENCE))
    try:
        with pytest.raises(UpstreamError) as caught:
            [event async for event in provider.stream(HELLO)]
    finally:
        provider.close()
    assert (caught.value.status, caught.value.code) == (504, "upstream_timeout")
    assert len(upstream.seen) == 2


async def test_a_stall_after_the_first_text_is_a_504_and_never_retried(upstream):
    provider = openai(upstream.url, PATIENT)
    stalling = sse_reply(openai_sse(["Hel", "lo"]), pause_after=2, pause=SILENCE)  # role chunk, "Hel", then silence
    upstream.script("POST", PATH, stalling, sse_reply(openai_sse(["never"])))
    received = []
    try:
        with pytest.raises(UpstreamError) as caught:
            async for event in provider.stream(HELLO):
                received.append(event)
    finally:
        provider.close()
    assert received == [TextDelta("Hel")]
    assert caught.value.status == 504
    assert len(upstream.seen) == 1


async def test_a_connection_dropped_mid_stream_is_an_error_after_the_text(gpt, upstream):
    dropped = sse_reply(openai_sse(["Hel", "lo", "never"]), cut=True)
    dropped.chunks = dropped.chunks[:3]  # role, "Hel", "lo" — then the socket closes mid-body
    upstream.script("POST", PATH, dropped, sse_reply(openai_sse(["never"])))
    received = []
    with pytest.raises(UpstreamError) as caught:
        async for event in gpt.stream(HELLO):
            received.append(event)
    assert "".join(e.text for e in received) == "Hello"
    assert (caught.value.status, caught.value.code) == (502, "upstream_disconnected")
    assert len(upstream.seen) == 1


def test_a_connection_dropped_before_any_text_is_retried(gpt, upstream):
    dropped = sse_reply(openai_sse(["never"]), cut=True)
    dropped.chunks = dropped.chunks[:1]  # only the role chunk
    upstream.script("POST", PATH, dropped, sse_reply(openai_sse(["ok"])))
    assert gpt.generate(HELLO).text == "ok"
    assert len(upstream.seen) == 2


def test_an_html_page_behind_a_200_is_an_error_not_text(gpt, upstream):
    page = Reply(200, {"content-type": "text/html"}, [b"<html><body>Please log in to the proxy</body></html>"])
    upstream.script("POST", PATH, page)
    with pytest.raises(UpstreamError) as caught:
        gpt.generate(HELLO)
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")
    assert "did not answer with an event stream" in caught.value.message


# --- the API key ---------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_a_refused_key_is_a_permanent_502_that_never_shows_the_key(upstream, caplog, kind, status):
    # OpenAI's real 401 quotes the key, masked in the middle: that text must not travel on.
    masked = f"{KEY[:10]}****{KEY[-4:]}"
    body = {"error": {"message": f"Incorrect API key provided: {masked}.", "type": "invalid_request_error"}}
    if kind == "anthropic":
        provider = AnthropicProvider("claude-test", api_key=KEY, base_url=upstream.url, http=FAST)
        path = "/v1/messages"
    else:
        provider = openai(upstream.url)
        path = PATH
    provider.load()
    upstream.script("POST", path, json_reply(status, body))
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(UpstreamError) as caught:
            provider.generate(HELLO)
    finally:
        provider.close()
    error = caught.value
    assert (error.status, error.code, error.permanent) == (502, "upstream_auth", True)
    assert error.message.startswith("the provider rejected the API key")
    assert len(upstream.seen) == 1
    assert masked not in error.message and KEY[:10] not in error.message
    assert KEY not in caplog.text and masked not in caplog.text
    assert KEY not in repr(provider)


def test_an_upstream_message_that_echoes_the_key_is_redacted(gpt, upstream):
    body = {"error": {"message": f"quota exceeded for {KEY}", "type": "insufficient_quota"}}
    upstream.script("POST", PATH, json_reply(402, body))
    with pytest.raises(UpstreamError) as caught:
        gpt.generate(HELLO)
    assert KEY not in caught.value.message
    assert "quota exceeded for [redacted]" in caught.value.message


# --- cancellation and pooling ------------------------------------------------------------------
# 1000 chunks 20 ms apart: the server finds a closed connection within a few writes, long before
# the 20 s it would take to send them all, however busy the machine.
MANY = [f"t{i} " for i in range(1000)]


async def test_closing_the_stream_closes_the_http_response(gpt, upstream):
    upstream.script("POST", PATH, sse_reply(openai_sse(MANY), chunk_delay=0.02))
    stream = gpt.stream(HELLO)
    received = [await anext(stream), await anext(stream)]
    await stream.aclose()
    assert received == [TextDelta("t0 "), TextDelta("t1 ")]
    assert await asyncio.to_thread(upstream.disconnected.wait, 30)
    assert upstream.chunks_sent < len(MANY) / 2


async def test_cancelling_the_task_that_streams_closes_the_http_response(gpt, upstream):
    upstream.script("POST", PATH, sse_reply(openai_sse(MANY), chunk_delay=0.02))
    first = asyncio.Event()

    async def consume():
        async for _ in gpt.stream(HELLO):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(upstream.disconnected.wait, 30)
    assert upstream.chunks_sent < len(MANY) / 2


def test_consecutive_requests_reuse_one_pooled_connection(gpt, upstream):
    upstream.script("POST", PATH, *[sse_reply(openai_sse(["ok"])) for _ in range(3)])
    for _ in range(3):
        gpt.generate(HELLO)
    assert len({seen.client_port for seen in upstream.seen}) == 1


async def test_consecutive_streams_reuse_one_pooled_connection(gpt, upstream):
    upstream.script("POST", PATH, *[sse_reply(openai_sse(["ok"])) for _ in range(3)])
    for _ in range(3):
        [event async for event in gpt.stream(HELLO)]
    assert len({seen.client_port for seen in upstream.seen}) == 1


def test_a_closed_provider_refuses_new_work(upstream):
    provider = openai(upstream.url)
    provider.close()
    provider.close()  # twice is fine
    with pytest.raises(Exception, match="closed"):
        provider.generate(HELLO)
