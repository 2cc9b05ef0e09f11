"""Streaming: SSE on predict and the chat WebSocket, token by token, with real cancellation.

Driven through the project's ASGI application with Channels' communicators, so every
`http.response.body` message is seen as it is sent (an ASGI HTTP client would buffer them).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from channels.testing import ApplicationCommunicator, WebsocketCommunicator

from inference.models import InferenceRecord
from inference.providers.base import GenerationRequest, SamplingParams

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Stream me"


def http_scope(path: str, headers: dict[str, str]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def open_predict(
    application, body: dict, token: str | None, **extra_headers: str
) -> tuple[ApplicationCommunicator, dict]:
    headers = {"Content-Type": "application/json", "Host": "127.0.0.1", **extra_headers}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    raw = json.dumps(body).encode()
    headers["Content-Length"] = str(len(raw))
    communicator = ApplicationCommunicator(application, http_scope("/api/v1/predict", headers))
    await communicator.send_input({"type": "http.request", "body": raw, "more_body": False})
    start = await communicator.receive_output(timeout=30)
    assert start["type"] == "http.response.start"
    return communicator, start


async def read_body(communicator: ApplicationCommunicator) -> list[bytes]:
    """Every body message until the last, as sent."""
    chunks = []
    while True:
        message = await communicator.receive_output(timeout=30)
        assert message["type"] == "http.response.body", message
        if message.get("body"):
            chunks.append(message["body"])
        if not message.get("more_body"):
            return chunks


def parse_frames(chunks: list[bytes]) -> list[tuple[str, dict]]:
    frames = []
    for block in b"".join(chunks).decode().split("\n\n"):
        if not block.strip():
            continue
        event, data = "message", None
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        frames.append((event, data))
    return frames


def headers_of(start: dict) -> dict[str, str]:
    return {k.decode().lower(): v.decode() for k, v in start["headers"]}


async def test_sse_sends_tokens_as_they_are_produced_and_they_match_the_json_answer(application, token, serving):
    body = {"prompt": PROMPT, "max_new_tokens": 12, "temperature": 0, "stream": True}
    communicator, start = await open_predict(application, body, token)
    assert start["status"] == 200
    headers = headers_of(start)
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    chunks = await read_body(communicator)
    frames = parse_frames(chunks)
    deltas = [data["delta"] for event, data in frames if event == "message"]
    assert len(deltas) > 1
    assert len(chunks) >= len(deltas)  # one body message per frame: nothing was buffered
    event, done = frames[-1]
    assert event == "done"
    assert done["usage"]["completion_tokens"] == 12
    assert done["cached"] is False
    assert "text" not in done
    expected = serving.generate(GenerationRequest(prompt=PROMPT, sampling=SamplingParams(max_new_tokens=12))).text
    assert "".join(deltas) == expected


async def test_a_cached_answer_streams_from_the_cache(application, token, serving, monkeypatch):
    body = {"prompt": PROMPT, "max_new_tokens": 8, "temperature": 0, "stream": True}
    first, _ = await open_predict(application, body, token)
    text = "".join(d["delta"] for e, d in parse_frames(await read_body(first)) if e == "message")

    async def refuse(request):
        pytest.fail("a cached answer reached the provider")
        yield

    monkeypatch.setattr(serving, "stream", refuse)
    second, _ = await open_predict(application, body, token)
    frames = parse_frames(await read_body(second))
    assert "".join(d["delta"] for e, d in frames if e == "message") == text
    assert frames[-1][0] == "done" and frames[-1][1]["cached"] is True


async def test_errors_before_the_first_token_are_http_errors_not_streams(application, token, serving):
    communicator, start = await open_predict(application, {"prompt": "word " * 400, "stream": True}, token)
    assert start["status"] == 400
    assert headers_of(start)["content-type"] == "application/json"
    body = json.loads(b"".join(await read_body(communicator)))
    assert body["error"]["code"] == "prompt_too_long"

    communicator, start = await open_predict(application, {"prompt": PROMPT, "stream": True}, None)
    assert start["status"] == 401
    communicator, start = await open_predict(application, {"prompt": PROMPT, "stream": True, "top_p": 3}, token)
    assert start["status"] == 400


async def test_streams_share_the_usage_limits(application, token, serving, settings, usage_clock):
    settings.USAGE_DEFAULT_REQUESTS_PER_MINUTE = 1
    body = {"prompt": PROMPT, "max_new_tokens": 2, "stream": True}
    first, start = await open_predict(application, body, token)
    assert start["status"] == 200
    await read_body(first)
    _, start = await open_predict(application, body, token)
    assert start["status"] == 429
    assert "retry-after" in headers_of(start)


@pytest.fixture
def generations(serving, monkeypatch) -> Callable[[], int]:
    """How many generations `serving` runs now: its scheduler's rows and queue, or its one-by-one workers."""
    scheduler = serving.scheduler
    if scheduler is not None:
        return lambda: scheduler.running + scheduler.waiting
    running: list[None] = []
    run = serving._run

    def counted(*args, **kwargs):
        running.append(None)
        try:
            return run(*args, **kwargs)
        finally:
            running.pop()

    monkeypatch.setattr(serving, "_run", counted)
    return lambda: len(running)


async def wait_until_stopped(provider, generations: Callable[[], int]) -> int:
    """The provider's produced-token count once no generation runs any more (fails after 30 s).

    A count that merely stopped growing for a while proves nothing on a busy machine.
    """
    deadline = time.monotonic() + 30
    while generations():
        assert time.monotonic() < deadline, "the provider kept generating"
        await asyncio.sleep(0.01)
    return provider.produced_tokens


# 200 new tokens: fewer than the 224 the tiny model's 256-token window leaves PROMPT, so a
# generation that ignored its client would reach the bound the tests below assert it stays under.
LONG = 200


async def test_a_client_leaving_mid_stream_stops_the_generation(application, token, serving, generations):
    before = serving.produced_tokens
    body = {"prompt": PROMPT, "max_new_tokens": LONG, "temperature": 0.8, "stream": True}
    communicator, start = await open_predict(application, body, token)
    assert start["status"] == 200
    first = await communicator.receive_output(timeout=30)
    assert first["more_body"] is True
    await communicator.send_input({"type": "http.disconnect"})
    stopped = await wait_until_stopped(serving, generations)
    assert stopped - before < LONG
    await communicator.wait(timeout=5)
    record = await InferenceRecord.objects.aget()
    assert record.status == "cancelled"
    assert record.source == "sse"


# --- WebSocket -------------------------------------------------------------------------------


async def open_socket(application, headers=None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/v1/chat/", headers=headers or [])
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def authed_socket(application, token: str) -> WebsocketCommunicator:
    communicator = await open_socket(application)
    await communicator.send_json_to({"type": "auth", "token": token})
    assert (await communicator.receive_json_from(timeout=10))["type"] == "ready"
    return communicator


async def collect(communicator: WebsocketCommunicator) -> tuple[list[str], dict]:
    tokens = []
    while True:
        message = await communicator.receive_json_from(timeout=30)
        if message["type"] == "token":
            tokens.append(message["text"])
        else:
            return tokens, message


async def test_an_api_client_authenticates_then_receives_tokens_in_order(application, token, serving):
    communicator = await authed_socket(application, token)
    await communicator.send_json_to({"type": "generate", "prompt": PROMPT, "max_new_tokens": 10, "temperature": 0})
    tokens, last = await collect(communicator)
    assert last["type"] == "done", last
    assert len(tokens) > 1
    assert last["usage"]["completion_tokens"] == 10
    assert (
        "".join(tokens)
        == serving.generate(GenerationRequest(prompt=PROMPT, sampling=SamplingParams(max_new_tokens=10))).text
    )
    await communicator.disconnect()
    assert (await InferenceRecord.objects.aget()).source == "ws"


@pytest.mark.parametrize(
    "first_message",
    [
        {"type": "generate", "prompt": PROMPT},
        {"type": "auth", "token": "not-a-token"},
        {"type": "auth", "token": "llms_0123456789ab_wrongsecret"},
        {"type": "auth"},
        ["auth"],
    ],
)
async def test_a_socket_that_does_not_authenticate_first_is_closed_with_4401(application, serving, first_message):
    communicator = await open_socket(application)
    await communicator.send_json_to(first_message)
    closed = await communicator.receive_output(timeout=10)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_the_browser_is_authenticated_by_its_session(application, alice, client, serving):
    await sync_to_async(client.force_login)(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = await open_socket(application, headers=[(b"cookie", cookie), (b"origin", b"http://127.0.0.1:8000")])
    assert await communicator.receive_json_from(timeout=10) == {"type": "ready", "user": "alice"}
    await communicator.send_json_to(
        {"type": "generate", "messages": [{"role": "user", "content": "Hi"}], "max_new_tokens": 3}
    )
    _, last = await collect(communicator)
    assert last["type"] == "done"
    await communicator.disconnect()


async def test_a_page_from_another_site_cannot_open_the_socket(application, serving):
    communicator = WebsocketCommunicator(application, "/ws/v1/chat/", headers=[(b"origin", b"https://evil.example")])
    connected, _ = await communicator.connect(timeout=10)
    assert not connected


async def test_bad_messages_get_an_error_that_names_the_field_and_keep_the_socket(application, token, serving):
    communicator = await authed_socket(application, token)
    await communicator.send_json_to({"type": "generate", "prompt": PROMPT, "temperature": 9})
    error = await communicator.receive_json_from(timeout=10)
    assert error["type"] == "error" and error["error"]["field"] == "temperature"
    await communicator.send_to(text_data="{not json")
    assert (await communicator.receive_json_from(timeout=10))["error"]["code"] == "invalid_json"
    await communicator.send_json_to({"type": "dance"})
    assert (await communicator.receive_json_from(timeout=10))["error"]["field"] == "type"
    await communicator.send_json_to({"type": "generate", "prompt": PROMPT, "max_new_tokens": 2})
    _, last = await collect(communicator)
    assert last["type"] == "done"
    await communicator.disconnect()


async def test_one_generation_at_a_time_per_socket(application, token, serving):
    communicator = await authed_socket(application, token)
    await communicator.send_json_to({"type": "generate", "prompt": PROMPT, "max_new_tokens": 200, "temperature": 0.8})
    await communicator.send_json_to({"type": "generate", "prompt": PROMPT, "max_new_tokens": 2})
    messages = []
    while True:
        message = await communicator.receive_json_from(timeout=30)
        messages.append(message)
        if message["type"] == "done":
            break
    errors = [m for m in messages if m["type"] == "error"]
    assert [e["error"]["code"] for e in errors] == ["busy"]
    await communicator.disconnect()


async def test_cancel_stops_the_generation_in_the_provider(application, token, serving, generations):
    communicator = await authed_socket(application, token)
    before = serving.produced_tokens
    await communicator.send_json_to({"type": "generate", "prompt": PROMPT, "max_new_tokens": LONG, "temperature": 0.8})
    assert (await communicator.receive_json_from(timeout=30))["type"] == "token"
    await communicator.send_json_to({"type": "cancel"})
    while (message := await communicator.receive_json_from(timeout=30))["type"] == "token":
        pass
    assert message["type"] == "done" and message["finish_reason"] == "cancelled"
    stopped = await wait_until_stopped(serving, generations)
    assert stopped - before < LONG
    record = await InferenceRecord.objects.aget()
    assert record.status == "cancelled"
    assert record.completion_tokens >= 1
    await communicator.disconnect()


async def test_closing_the_socket_stops_the_generation(application, token, serving, generations):
    communicator = await authed_socket(application, token)
    before = serving.produced_tokens
    await communicator.send_json_to({"type": "generate", "prompt": PROMPT, "max_new_tokens": LONG, "temperature": 0.8})
    assert (await communicator.receive_json_from(timeout=30))["type"] == "token"
    await communicator.disconnect()
    stopped = await wait_until_stopped(serving, generations)
    assert stopped - before < LONG


async def test_concurrent_streams_interleave(application, token, serving):
    sockets = [await authed_socket(application, token) for _ in range(2)]
    for socket in sockets:
        await socket.send_json_to({"type": "generate", "prompt": PROMPT, "max_new_tokens": 120, "temperature": 0.8})
    order: list[tuple[int, str]] = []

    async def drain(index: int, socket: WebsocketCommunicator) -> None:
        while True:
            message = await socket.receive_json_from(timeout=30)
            order.append((index, message["type"]))
            if message["type"] != "token":
                return

    await asyncio.gather(*(drain(i, s) for i, s in enumerate(sockets)))
    first_done = next(position for position, (_, kind) in enumerate(order) if kind == "done")
    # Both sockets received tokens before either finished: neither waited for the other.
    assert {index for index, kind in order[:first_done] if kind == "token"} == {0, 1}
    for socket in sockets:
        await socket.disconnect()


async def test_an_event_stream_accept_header_is_welcome(application, token, serving):
    body = {"prompt": PROMPT, "max_new_tokens": 3, "stream": True}
    communicator, start = await open_predict(application, body, token, Accept="text/event-stream")
    assert start["status"] == 200
    frames = parse_frames(await read_body(communicator))
    assert frames[-1][0] == "done"


async def test_the_socket_takes_a_response_format_and_streams_json_that_fits(application, token, serving):
    import jsonschema

    schema = {
        "type": "object",
        "properties": {"mood": {"enum": ["calm", "busy"]}, "level": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["mood", "level"],
        "additionalProperties": False,
    }
    shape = {"type": "json_schema", "json_schema": {"name": "mood", "schema": schema}}
    communicator = await authed_socket(application, token)
    await communicator.send_json_to(
        {"type": "generate", "prompt": PROMPT, "max_new_tokens": 64, "response_format": shape}
    )
    tokens, last = await collect(communicator)
    assert last["type"] == "done" and last["finish_reason"] == "stop", last
    jsonschema.validate(json.loads("".join(tokens)), schema)
    # A format the server cannot enforce is an error naming the field, and the socket stays open.
    refused = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "not": {}}}}
    await communicator.send_json_to({"type": "generate", "prompt": PROMPT, "response_format": refused})
    error = await communicator.receive_json_from(timeout=10)
    assert error["type"] == "error" and error["error"]["field"] == "response_format.json_schema.schema", error
    await communicator.send_json_to({"type": "generate", "prompt": PROMPT, "max_new_tokens": 3})
    assert (await collect(communicator))[1]["type"] == "done"
    await communicator.disconnect()
