"""Streams pass through the metrics middleware unbuffered, are counted, and keep the active-streams gauge.

Driven with Channels' ApplicationCommunicator on the project's ASGI application, so each
`http.response.body` message is seen when it is sent (an ASGI HTTP client would buffer).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from channels.testing import ApplicationCommunicator
from prometheus_client import REGISTRY
from rest_framework_simplejwt.tokens import AccessToken

from dashboard.models import RequestMetric
from inference.engine import get_engine
from inference.providers.base import GenerationRequest, Provider, StreamEnd, TextDelta, Usage

pytestmark = pytest.mark.django_db(transaction=True)

PREDICT = "/api/v1/predict"


class GatedProvider(Provider):
    """Sends one token, then waits for the test to open the gate before it finishes."""

    name = "gated"

    def __init__(self) -> None:
        super().__init__("gated-model")
        self.gate = threading.Event()

    def load(self) -> None:
        pass

    @property
    def context_window(self) -> int:
        return 10_000

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def stream(self, request: GenerationRequest) -> AsyncIterator[TextDelta | StreamEnd]:
        yield TextDelta("first ")
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        yield TextDelta("second")
        yield StreamEnd(Usage(prompt_tokens=2, completion_tokens=2), "stop", ttft=0.001)


@pytest.fixture
def gated():
    provider = GatedProvider()
    get_engine().set(provider)
    yield provider
    provider.gate.set()
    get_engine().reset()


def gauge() -> float:
    return REGISTRY.get_sample_value("llmsite_http_streams_active", {"endpoint": PREDICT}) or 0.0


def streams_started() -> float:
    return REGISTRY.get_sample_value("llmsite_http_streams_total", {"endpoint": PREDICT}) or 0.0


async def test_a_stream_arrives_piece_by_piece_through_the_middleware_and_is_counted(alice, gated, recorder):
    from llmsite.asgi import application

    token = str(AccessToken.for_user(alice))
    body = json.dumps({"prompt": "stream please", "stream": True, "temperature": 0.5}).encode()
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PREDICT,
        "raw_path": PREDICT.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    started_before = streams_started()
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(timeout=10)
    assert start["type"] == "http.response.start" and start["status"] == 200

    # The first frame arrives while the provider still holds the rest back: nothing is buffered.
    first = await communicator.receive_output(timeout=10)
    assert first["more_body"] is True
    assert b'"delta":"first "' in first["body"]
    assert not gated.gate.is_set()
    assert gauge() == 1.0
    assert streams_started() == started_before + 1

    gated.gate.set()
    rest = []
    while True:
        message = await communicator.receive_output(timeout=10)
        rest.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    text = b"".join(rest)
    assert b'"delta":"second"' in text and b"event: done" in text
    await communicator.wait(timeout=5)
    assert gauge() == 0.0

    await sync_to_async(recorder.flush)()
    metric = await RequestMetric.objects.aget()
    assert (metric.endpoint, metric.method, metric.status, metric.streamed) == (PREDICT, "POST", 200, True)
    assert metric.user_id == alice.pk
    # Generated tokens are counted from the usage record the stream wrote.
    tokens = REGISTRY.get_sample_value(
        "llmsite_inference_tokens_total", {"provider": "gated", "model": "gated-model", "kind": "completion"}
    )
    assert tokens is not None and tokens >= 2
