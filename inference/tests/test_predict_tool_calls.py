"""Tool calls on predict (JSON and SSE), the chat WebSocket and conversations: the same tool fields as /v1.

The tiny model has random weights: under tool_choice "required" every answer is still one valid call of a
listed function (inference/tests/test_tool_calls.py proves the engine side); here, that it reaches clients.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message
from conversations.services import conversation_create
from inference.providers.base import ToolCall

from .test_completion_contract import schema_validator
from .test_streaming import authed_socket, open_predict, parse_frames, read_body
from .test_tool_calls import ADD, MAX_NEW, NOW, WEATHER, assert_valid_call

ASK = {"prompt": "Weather in Oslo?", "max_new_tokens": MAX_NEW, "tools": [WEATHER, NOW], "tool_choice": "required"}


def joined(pieces: list[dict]) -> list[ToolCall]:
    """Tool call pieces (SSE `tool_call` frames, WebSocket `tool_call` messages) joined into whole calls."""
    calls: dict[int, dict] = {}
    for piece in pieces:
        call = calls.setdefault(piece["index"], {"arguments": ""})
        if "id" in piece:
            call.update(id=piece["id"], name=piece["name"])
        call["arguments"] += piece["arguments"]
    return [ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]


@pytest.mark.django_db
def test_predict_answers_a_required_call_with_the_call_in_its_published_shape(alice_client, serving):
    response = alice_client.post("/api/v1/predict", ASK, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["finish_reason"] == "tool_calls"
    (call,) = body["tool_calls"]
    assert_valid_call(ToolCall(call["id"], call["name"], call["arguments"]), [WEATHER, NOW])
    schema_validator("Completion").validate(body)
    free = alice_client.post("/api/v1/predict", {"prompt": "Hi", "max_new_tokens": 3}, format="json").json()
    assert "tool_calls" not in free  # no tools, no calls: the answer is the same as before


@pytest.mark.django_db
def test_a_named_function_is_the_one_predict_calls_and_parallel_calls_may_be_refused(alice_client, serving):
    body = {**ASK, "tools": [WEATHER, ADD], "tool_choice": {"type": "function", "function": {"name": "add"}}}
    response = alice_client.post("/api/v1/predict", {**body, "parallel_tool_calls": False}, format="json")
    assert response.status_code == 200, response.content
    (call,) = response.json()["tool_calls"]
    assert call["name"] == "add"
    assert_valid_call(ToolCall(call["id"], call["name"], call["arguments"]), [ADD])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools.0.function.name", "letters"),
        ({"tools": {"type": "function"}}, "tools", ""),
        ({"tools": [ADD], "tool_choice": {"type": "function", "function": {"name": "mul"}}}, "tool_choice", "mul"),
        ({"tools": None, "tool_choice": "required"}, "tool_choice", "needs tools"),
        ({"tool_choice": "sometimes"}, "tool_choice", ""),
        ({"parallel_tool_calls": "maybe"}, "parallel_tool_calls", ""),
    ],
)
def test_predict_refuses_bad_tools_naming_the_field(alice_client, serving, change, field, words):
    response = alice_client.post("/api/v1/predict", {**ASK, **change}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"].startswith(field), error
    assert words in error["message"]


@pytest.mark.django_db(transaction=True)
async def test_sse_sends_each_tool_call_piece_and_the_whole_calls_when_done(application, token, serving):
    communicator, start = await open_predict(application, {**ASK, "stream": True}, token)
    assert start["status"] == 200
    frames = parse_frames(await read_body(communicator))
    pieces = [data for event, data in frames if event == "tool_call"]
    assert pieces and "id" in pieces[0] and "name" in pieces[0]
    assert all("id" not in piece for piece in pieces[1:])  # one call: only its first piece names it
    event, done = frames[-1]
    assert event == "done" and done["finish_reason"] == "tool_calls", frames[-1]
    (call,) = joined(pieces)
    assert [call.as_dict()] == done["tool_calls"]
    assert_valid_call(call, [WEATHER, NOW])


@pytest.mark.django_db(transaction=True)
async def test_the_socket_streams_tool_call_frames_and_refuses_bad_tools_naming_the_field(application, token, serving):
    communicator = await authed_socket(application, token)
    await communicator.send_json_to({"type": "generate", **ASK})
    pieces = []
    while (message := await communicator.receive_json_from(timeout=30))["type"] == "tool_call":
        pieces.append({k: v for k, v in message.items() if k != "type"})
    assert message["type"] == "done" and message["finish_reason"] == "tool_calls", message
    (call,) = joined(pieces)
    assert [call.as_dict()] == message["tool_calls"]
    assert_valid_call(call, [WEATHER, NOW])
    await communicator.send_json_to({"type": "generate", **ASK, "tools": [{"type": "function"}]})
    error = await communicator.receive_json_from(timeout=10)
    assert error["type"] == "error" and error["error"]["field"].startswith("tools.0"), error
    await communicator.disconnect()


@pytest.mark.django_db
def test_a_conversation_keeps_the_calls_shows_them_and_sends_them_back_next_turn(alice, alice_client, serving, seen):
    thread = conversation_create(user=alice)
    asked = {**ASK, "tools": [WEATHER], "conversation": thread.pk}  # arguments that are never empty
    first = alice_client.post("/api/v1/predict", asked, format="json").json()
    (call,) = first["tool_calls"]
    stored = Message.objects.get(pk=first["message"])
    assert (stored.finish_reason, stored.tool_calls) == ("tool_calls", [call])

    shown = alice_client.get(f"/api/v1/conversations/{thread.pk}").json()["messages"]
    assert [m["tool_calls"] for m in shown] == [[], [call]]

    second = alice_client.post(
        "/api/v1/predict", {"prompt": "Thanks", "conversation": thread.pk, "max_new_tokens": 3}, format="json"
    )
    assert second.status_code == 200, second.content
    history = seen[-1].messages
    assert [m.role for m in history] == ["user", "assistant", "user"]
    # Stored calls have no results (the page runs no tools), and remote APIs refuse a call without its
    # result: the calls come back written into the answer's text, as local models read calls.
    assert history[1].tool_calls == ()
    assert call["name"] in history[1].content and "<tool_call>" in history[1].content
    rendered = serving.render(seen[-1])  # the model reads what it called, arguments and all
    assert call["name"] in rendered and json.dumps(json.loads(call["arguments"]))[1:-1] in rendered


@pytest.mark.django_db(transaction=True)
async def test_a_call_streamed_over_the_socket_is_stored_in_the_conversation(alice, application, token, serving):
    thread = await sync_to_async(conversation_create)(user=alice)
    communicator = await authed_socket(application, token)
    await communicator.send_json_to({"type": "generate", **ASK, "conversation": thread.pk})
    while (message := await communicator.receive_json_from(timeout=30))["type"] == "tool_call":
        pass
    assert message["type"] == "done", message
    stored = await Message.objects.aget(pk=message["message"])
    assert stored.tool_calls == message["tool_calls"] and len(stored.tool_calls) == 1
    await communicator.disconnect()
