"""Answers running while the server shuts down: each protocol's error when the grace ends, and refusals.

The project's ASGI application with Channels' communicators (every body message seen as sent) and the
tiny model; its forward pass is held by a real forward pre-hook, so an answer is running, not finishing,
when the grace period ends.
"""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from inference.models import InferenceRecord
from inference.tests.test_streaming import authed_socket, open_predict, parse_frames, read_body
from llmsite.shutdown import drain

GRACE = 30


@pytest.fixture(autouse=True)
def serving_again():
    yield
    drain.reset()


@pytest.mark.django_db(transaction=True)
async def test_a_stream_running_when_the_grace_ends_stops_with_an_error_event_and_is_recorded(
    application, token, serving
):
    # The model makes a few tokens, then its next forward pass waits: the answer is running, not finishing.
    passes, gate = [0], threading.Event()

    def hold(module, args):
        passes[0] += 1
        if passes[0] > 4:
            gate.wait()

    hook = serving.hf_model.register_forward_pre_hook(hold)
    try:
        body = {"prompt": "Tell me about the sea.", "max_new_tokens": 200, "stream": True}
        communicator, start = await open_predict(application, body, token)
        assert start["status"] == 200
        first = await communicator.receive_output(timeout=30)
        assert b'"delta"' in first["body"]
        assert drain.active >= 1  # the request counts as work in flight
        drain.begin(0.5)
        frames = parse_frames([first["body"], *await read_body(communicator)])
    finally:
        gate.set()
        hook.remove()
    event, data = frames[-1]
    assert event == "error" and data["error"]["code"] == "shutting_down", frames[-3:]
    assert all(event == "message" for event, _data in frames[:-1])
    record = await sync_to_async(InferenceRecord.objects.get)()
    assert record.status == InferenceRecord.Status.ERROR
    assert "shutting down" in record.error and record.completion_tokens >= 1
    await communicator.wait(timeout=30)
    assert drain.active == 0


@pytest.mark.django_db(transaction=True)
async def test_while_draining_a_websocket_gets_no_new_generation_and_new_sockets_are_refused(
    application, token, serving
):
    open_socket = await authed_socket(application, token)
    drain.begin(GRACE)
    await open_socket.send_json_to({"type": "generate", "prompt": "hello", "max_new_tokens": 4})
    message = await open_socket.receive_json_from(timeout=30)
    assert message["type"] == "error" and message["error"]["code"] == "shutting_down", message
    await open_socket.disconnect()

    newcomer = WebsocketCommunicator(application, "/ws/v1/chat/")
    connected, code = await newcomer.connect(timeout=10)
    assert not connected and code == 1012  # service restart
