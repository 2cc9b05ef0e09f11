"""POST /api/v1/predict refuses bad input with a 400 that names the field."""

import pytest

pytestmark = pytest.mark.django_db

OK = {"prompt": "Hello"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"messages": []}, "messages"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages.0.content"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "hi", "name": "x"}]}, "messages.0.name"),
        ({**OK, "max_new_tokens": 0}, "max_new_tokens"),
        ({**OK, "max_new_tokens": 513}, "max_new_tokens"),
        ({**OK, "temperature": -0.1}, "temperature"),
        ({**OK, "temperature": 2.5}, "temperature"),
        ({**OK, "top_p": 0}, "top_p"),
        ({**OK, "top_p": 1.5}, "top_p"),
        ({**OK, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({**OK, "stop": "a"}, "stop"),
        ({**OK, "seed": -1}, "seed"),
        ({**OK, "nonsense": 1}, "nonsense"),
        ({**OK, "stream": "maybe"}, "stream"),
        ({**OK, "collection": 5}, "collection"),
        ({**OK, "collection": "docs", "top_k": 51}, "top_k"),
        ({**OK, "top_k": 3}, "top_k"),
        ({**OK, "conversation": 0}, "conversation"),
    ],
)
def test_it_refuses_each_invalid_field(alice_client, serving, body, field):
    response = alice_client.post("/api/v1/predict", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field


def test_it_refuses_a_prompt_over_the_character_limit(alice_client, serving, settings):
    settings.LLM_MAX_PROMPT_CHARS = 10
    response = alice_client.post("/api/v1/predict", {"prompt": "x" * 11}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "prompt"
    assert "11 characters" in response.json()["error"]["message"]


def test_it_says_how_many_tokens_a_too_long_prompt_has_and_the_limit(alice_client, serving):
    response = alice_client.post("/api/v1/predict", {"prompt": "word " * 400}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "prompt_too_long"
    assert error["field"] == "prompt"
    assert "context window is 256" in error["message"]
    assert "tokens" in error["message"]


def test_it_requires_authentication(api_client, serving):
    response = api_client.post("/api/v1/predict", OK, format="json")
    assert response.status_code in (401, 403)


def test_it_answers_in_the_documented_shape(alice_client, serving):
    response = alice_client.post("/api/v1/predict", {**OK, "max_new_tokens": 5}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"id", "text", "provider", "model", "usage", "cached", "latency_ms"}
    assert body["provider"] == "hf"
    assert body["model"] == "tiny-a"
    assert body["usage"]["completion_tokens"] <= 5
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert response["X-Cache"] == "MISS"


def test_the_31st_predict_in_a_minute_is_refused_per_user(alice_client, bob, serving, settings, usage_clock):
    settings.USAGE_DEFAULT_REQUESTS_PER_MINUTE = 30
    body = {"prompt": "Hi", "max_new_tokens": 1, "temperature": 0}
    for _ in range(30):
        assert alice_client.post("/api/v1/predict", body, format="json").status_code == 200
    refused = alice_client.post("/api/v1/predict", body, format="json")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["code"], error["limit"], error["limit_value"], error["used"]) == (
        "quota_exceeded",
        "requests_per_minute",
        30,
        30,
    )
    assert int(refused["Retry-After"]) == 30  # the pinned clock is half way through its minute
    # Another user has their own budget.
    from rest_framework.test import APIClient

    bob_client = APIClient()
    bob_client.force_authenticate(user=bob)
    assert bob_client.post("/api/v1/predict", body, format="json").status_code == 200
