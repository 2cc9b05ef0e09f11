"""Every completion entry point is metered: limits before the work, the ledger after, scopes and model lists on keys."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.services import api_key_create
from inference.tests.test_streaming import headers_of, open_predict, read_body
from usage.models import UsageBucket
from usage.services import limits_set

pytestmark = pytest.mark.django_db(transaction=True)


ASK = {"prompt": "Count with me: one, two", "max_new_tokens": 6, "temperature": 0}
CHAT = {"model": "tiny-a", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 5}


def key_client(user, **options) -> APIClient:
    _key, secret = api_key_create(user=user, **options)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def ledger() -> dict[str, int]:
    rows = UsageBucket.objects.all()
    return {
        "requests": sum(r.requests for r in rows),
        "tokens": sum(r.prompt_tokens + r.completion_tokens for r in rows),
        "cancelled": sum(r.cancelled_requests for r in rows),
        "cached": sum(r.cached_requests for r in rows),
    }


def tokens_of(body: dict) -> int:
    return body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_predict_and_v1_answers_are_in_the_ledger_cached_ones_included(alice_client, serving):
    first = alice_client.post("/api/v1/predict", ASK, format="json").json()
    again = alice_client.post("/api/v1/predict", ASK, format="json")
    assert again["X-Cache"] == "HIT"
    chat = alice_client.post("/v1/chat/completions", CHAT, format="json").json()
    assert ledger() == {
        "requests": 3,
        "tokens": 2 * tokens_of(first) + chat["usage"]["total_tokens"],
        "cancelled": 0,
        "cached": 1,
    }


def test_a_limit_set_by_staff_refuses_the_request_that_would_cross_it_with_its_reset_time(
    alice, alice_client, staff_client, serving, usage_clock
):
    response = staff_client.put(f"/api/v1/usage/limits/{alice.pk}", {"tokens_per_day": 60}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["own"] == {"tokens_per_day": 60}
    answered = alice_client.post("/api/v1/predict", ASK, format="json")
    assert answered.status_code == 200
    spent = tokens_of(answered.json())
    assert answered["x-ratelimit-limit-tokens"] == "60"
    assert answered["x-ratelimit-remaining-tokens"] == str(60 - spent)
    assert answered["x-ratelimit-reset-tokens"].endswith("s")

    refused = alice_client.post("/api/v1/predict", ASK | {"max_new_tokens": 60}, format="json")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["code"], error["limit"], error["used"]) == ("quota_exceeded", "tokens_per_day", spent)
    assert error["resets_at"].endswith("T00:00:00Z")
    assert int(refused["Retry-After"]) >= 1

    openai = alice_client.post("/v1/chat/completions", CHAT | {"max_tokens": 60}, format="json")
    assert openai.status_code == 429
    assert openai.json()["error"]["type"] == "rate_limit_error"
    assert openai.json()["error"]["code"] == "quota_exceeded"
    assert ledger()["requests"] == 1


async def test_a_refused_stream_is_an_http_429_and_an_admitted_one_carries_the_headers(
    application, alice, serving, usage_clock
):
    await limits_set_async(alice, {"requests_per_minute": 1})
    token = str(AccessToken.for_user(alice))
    body = ASK | {"stream": True}
    communicator, start = await open_predict(application, body, token)
    assert start["status"] == 200
    assert headers_of(start)["x-ratelimit-remaining-requests"] == "0"
    frames = b"".join(await read_body(communicator)).decode()
    done = json.loads(frames.split("event: done\ndata: ")[1].split("\n")[0])
    _, start = await open_predict(application, body, token)
    assert start["status"] == 429
    assert int(headers_of(start)["retry-after"]) >= 1
    assert (await sync_to_async(ledger)())["tokens"] == tokens_of(done)


async def limits_set_async(user, values):
    await sync_to_async(limits_set)(user=user, values=values)


async def test_the_websocket_sends_a_quota_error_and_refuses_keys_without_the_chat_scope(
    application, alice, serving, usage_clock
):
    await limits_set_async(alice, {"tokens_per_day": 5})
    socket = WebsocketCommunicator(application, "/ws/v1/chat/", headers=[(b"host", b"127.0.0.1")])
    await socket.connect()
    await socket.send_json_to({"type": "auth", "token": str(AccessToken.for_user(alice))})
    assert (await socket.receive_json_from())["type"] == "ready"
    await socket.send_json_to({"type": "generate", **ASK})
    error = (await socket.receive_json_from(timeout=30))["error"]
    assert (error["code"], error["limit"]) == ("quota_exceeded", "tokens_per_day")
    await socket.disconnect()

    _key, secret = await sync_to_async(api_key_create)(user=alice, scopes=["embeddings"])
    socket = WebsocketCommunicator(application, "/ws/v1/chat/", headers=[(b"host", b"127.0.0.1")])
    await socket.connect()
    await socket.send_json_to({"type": "auth", "token": secret})
    error = (await socket.receive_json_from())["error"]
    assert error["code"] == "scope_not_allowed"
    assert (await socket.receive_output())["code"] == 4403


async def test_a_stream_left_early_is_billed_for_its_prompt_and_what_it_produced(application, alice, serving):
    token = str(AccessToken.for_user(alice))
    communicator, start = await open_predict(application, ASK | {"max_new_tokens": 200, "stream": True}, token)
    assert start["status"] == 200
    await communicator.receive_output(timeout=30)  # the first frame
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(timeout=30)
    for _ in range(600):  # the record is written as the cancelled stream unwinds: wait for it, up to 30 s
        spent = await sync_to_async(ledger)()
        if spent["requests"]:
            break
        await asyncio.sleep(0.05)
    assert spent["cancelled"] == 1
    assert spent["tokens"] > 1  # the prompt's tokens and at least one produced


def test_a_key_scoped_to_embeddings_is_refused_on_chat_with_a_message_saying_so(alice, serving):
    client = key_client(alice, scopes=["embeddings"])
    refused = client.post("/api/v1/predict", ASK, format="json")
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "scope_not_allowed"
    assert "chat" in error["message"] and "embeddings" in error["message"]
    openai = client.post("/v1/chat/completions", CHAT, format="json")
    assert openai.status_code == 403
    assert openai.json()["error"]["type"] == "permission_error"
    assert key_client(alice, scopes=["chat"]).post("/api/v1/predict", ASK, format="json").status_code == 200


def test_a_key_limited_to_some_models_is_refused_on_others(alice, serving):
    client = key_client(alice, models=["another-model"])
    refused = client.post("/api/v1/predict", ASK, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert "tiny-a" in refused.json()["error"]["message"]
    assert key_client(alice, models=["tiny-a"]).post("/v1/chat/completions", CHAT, format="json").status_code == 200
    assert ledger()["requests"] == 1


def test_keys_take_scopes_and_models_and_never_an_admin_scope(alice_client):
    created = alice_client.post(
        "/api/v1/auth/keys", {"name": "ci", "scopes": ["embeddings"], "models": ["tiny-a"]}, format="json"
    )
    assert created.status_code == 201
    assert (created.json()["scopes"], created.json()["models"]) == (["embeddings"], ["tiny-a"])
    default = alice_client.post("/api/v1/auth/keys", {"name": "all"}, format="json").json()
    assert (default["scopes"], default["models"]) == (["chat", "embeddings", "metrics"], [])
    refused = alice_client.post("/api/v1/auth/keys", {"scopes": ["admin"]}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["field"].startswith("scopes")


def test_a_staff_members_key_reads_metrics_but_never_changes_the_site(staff):
    client = key_client(staff)
    assert client.get("/api/v1/metrics").status_code == 200
    refused = client.delete("/api/v1/cache")
    assert refused.status_code == 403
    assert "not an API key" in refused.json()["error"]["message"]
    assert key_client(staff, scopes=["chat"]).get("/api/v1/metrics").status_code == 403


def test_a_cached_answer_is_refused_past_a_limit_and_nothing_is_recorded(alice, alice_client, serving, usage_clock):
    from inference.models import InferenceRecord

    first = alice_client.post("/api/v1/predict", ASK, format="json").json()
    limits_set(user=alice, values={"tokens_per_day": tokens_of(first) + 1})
    refused = alice_client.post("/api/v1/predict", ASK, format="json")  # would come from the cache
    assert refused.status_code == 429
    assert refused.json()["error"]["limit"] == "tokens_per_day"
    assert InferenceRecord.objects.count() == 1
    assert ledger()["requests"] == 1
