"""/v1/ refuses what it cannot honour with OpenAI's error shape, and accepts what clients send by default."""

import pytest

pytestmark = pytest.mark.django_db

OK = {"model": "tiny-a", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


def post(client, body):
    return client.post("/v1/chat/completions", body, format="json")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**OK, "n": 9}, "n"),
        ({**OK, "max_tokens": 10_000}, "max_tokens"),
        ({**OK, "temperature": 3}, "temperature"),
        ({**OK, "top_p": 0}, "top_p"),
        ({**OK, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({**OK, "messages": []}, "messages"),
        ({**OK, "messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool_call_id"),
        (
            {**OK, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages.0.content",
        ),
        ({**OK, "tools": [{"type": "function"}]}, "tools.0.function"),
        ({**OK, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({**OK, "top_logprobs": 2}, "top_logprobs"),
        ({**OK, "frobnicate": 1}, "frobnicate"),
        ({**OK, "stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_it_refuses_with_openais_error_shape(alice_client, serving, body, param):
    response = post(alice_client, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_it_accepts_text_parts_developer_messages_and_neutral_defaults(alice_client, serving):
    body = {
        **OK,
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]},
        ],
        "frequency_penalty": 0,
        "presence_penalty": 0,
        "tools": None,
        "stop": "\n\n",
        "user": "someone",
    }
    response = post(alice_client, body)
    assert response.status_code == 200, response.content
    assert response.json()["choices"][0]["message"]["role"] == "assistant"


def test_an_unauthenticated_call_is_a_401_in_openais_shape(api_client, serving):
    response = post(api_client, OK)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_it_shares_the_usage_limits_and_says_so_in_openais_shape(alice_client, serving, settings, usage_clock):
    settings.USAGE_DEFAULT_REQUESTS_PER_MINUTE = 2
    assert alice_client.post("/api/v1/predict", {"prompt": "Hi", "max_new_tokens": 1}, format="json").status_code == 200
    assert post(alice_client, OK).status_code == 200
    refused = post(alice_client, OK)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "Retry-After" in refused


def test_an_unknown_embedding_model_is_a_404(alice_client, serving):
    response = alice_client.post("/v1/embeddings", {"model": "text-embedding-3-large", "input": "x"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
