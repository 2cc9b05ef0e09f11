"""Embedding requests are usage too: their tokens are held on the payer's limits and land in the ledger."""

from __future__ import annotations

import pytest

from accounts.services import api_key_create
from usage.models import UsageBucket
from usage.services import limits_set

pytestmark = pytest.mark.django_db


def embedding_tokens() -> int:
    return sum(r.prompt_tokens for r in UsageBucket.objects.filter(kind="embedding"))


def test_encoding_adding_and_searching_are_embedding_usage_of_the_caller(alice, alice_client, store, encoder):
    texts = ["The cat sat on the mat.", "Paris is the capital of France."]
    assert alice_client.post("/api/v1/embed/encode", {"texts": texts}, format="json").status_code == 200
    added = alice_client.post("/api/v1/embed/add", {"documents": [{"text": texts[1]}]}, format="json")
    assert added.status_code == 201, added.content
    assert alice_client.post("/api/v1/embed/search", {"query": "capital"}, format="json").status_code == 200
    openai = alice_client.post("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": texts}, format="json")
    assert openai.status_code == 200
    expected = (
        encoder.count_tokens(texts) + encoder.count_tokens(texts[1:]) + encoder.count_tokens(["capital"])
    ) + openai.json()["usage"]["prompt_tokens"]
    assert embedding_tokens() == expected
    assert set(UsageBucket.objects.values_list("user", "model", "kind")) == {
        (alice.pk, "all-MiniLM-L6-v2", "embedding")
    }
    assert sum(UsageBucket.objects.values_list("requests", flat=True)) == 4


def test_an_embedding_request_past_a_limit_is_refused_and_not_encoded(alice, alice_client, store, usage_clock):
    limits_set(user=alice, values={"tokens_per_day": 5})
    refused = alice_client.post("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "x " * 20}, format="json")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert embedding_tokens() == 0


def test_a_key_scoped_to_chat_cannot_embed(alice, store):
    from rest_framework.test import APIClient

    _key, secret = api_key_create(user=alice, scopes=["chat"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    refused = client.post("/api/v1/embed/encode", {"texts": ["hi"]}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "scope_not_allowed"
