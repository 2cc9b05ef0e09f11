"""Predict, SSE and the WebSocket append to a conversation when given one, with its history in front."""

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message
from conversations.services import conversation_create
from inference import services
from inference.protocol import CompletionRequest
from inference.providers.base import SamplingParams, TextDelta

pytestmark = pytest.mark.django_db


def test_each_exchange_is_stored_and_the_history_goes_first(alice, alice_client, seen):
    thread = conversation_create(user=alice)
    first = alice_client.post(
        "/api/v1/predict", {"prompt": "My name is Ada.", "conversation": thread.pk, "max_new_tokens": 3}, format="json"
    )
    assert first.status_code == 200, first.content
    assert first.json()["conversation"] == thread.pk
    answer = Message.objects.get(pk=first.json()["message"])
    assert (answer.role, answer.content) == ("assistant", first.json()["text"])

    second = alice_client.post(
        "/api/v1/predict", {"prompt": "What is my name?", "conversation": thread.pk, "max_new_tokens": 3}, format="json"
    )
    assert second.status_code == 200
    sent = [(m.role, m.content) for m in seen[1].messages]
    assert sent == [
        ("user", "My name is Ada."),
        ("assistant", first.json()["text"]),
        ("user", "What is my name?"),
    ]
    assert list(thread.messages.values_list("role", flat=True)) == ["user", "assistant", "user", "assistant"]


def test_someone_elses_conversation_is_not_found_and_nothing_is_stored(alice, bob, api_client, serving):
    thread = conversation_create(user=alice)
    api_client.force_authenticate(user=bob)
    response = api_client.post("/api/v1/predict", {"prompt": "Hi", "conversation": thread.pk}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "conversation"
    assert not thread.messages.exists()


@pytest.mark.django_db(transaction=True)
async def test_a_stopped_stream_keeps_the_partial_answer_in_the_thread(alice, serving):
    thread = await sync_to_async(conversation_create)(user=alice)
    stream = services.complete_stream(
        CompletionRequest(
            prompt="Go", conversation=thread.pk, sampling=SamplingParams(max_new_tokens=200, temperature=0.8)
        ),
        user=alice,
    )
    text = ""
    async for event in stream:
        assert isinstance(event, TextDelta)
        text += event.text
        break
    await stream.aclose()
    stored = [m async for m in Message.objects.filter(conversation=thread).order_by("id")]
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].finish_reason == "cancelled"
    assert stored[1].content == text


def test_the_stored_answer_names_its_provider_model_tokens_and_completion(alice, alice_client, serving):
    thread = conversation_create(user=alice)
    for prompt in ("Hello", "Tell me more"):
        response = alice_client.post(
            "/api/v1/predict", {"prompt": prompt, "conversation": thread.pk, "max_new_tokens": 3}, format="json"
        )
        assert response.status_code == 200, response.content

    assert list(thread.messages.values_list("role", flat=True)) == ["user", "assistant", "user", "assistant"]
    last = thread.messages.last()
    assert (last.provider, last.model, last.completion_id) == ("hf", "tiny-a", response.json()["id"])
    assert last.prompt_tokens > 0 and 0 < last.completion_tokens <= 3
