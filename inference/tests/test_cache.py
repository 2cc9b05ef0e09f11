"""The response cache: hits never reach the provider, only deterministic requests are cached."""

import pytest

from inference import cache

pytestmark = pytest.mark.django_db

GREEDY = {"prompt": "Tell me about caches", "max_new_tokens": 8, "temperature": 0}


def test_it_serves_a_repeated_greedy_request_from_the_cache_without_the_provider(alice_client, calls):
    first = alice_client.post("/api/v1/predict", GREEDY, format="json")
    second = alice_client.post("/api/v1/predict", GREEDY, format="json")
    assert first["X-Cache"] == "MISS"
    assert second["X-Cache"] == "HIT"
    assert second.json()["cached"] is True
    assert second.json()["text"] == first.json()["text"]
    assert second.json()["usage"] == first.json()["usage"]
    assert len(calls) == 1


def test_it_caches_seeded_sampling_but_not_unseeded(alice_client, calls):
    seeded = {**GREEDY, "temperature": 0.8, "seed": 3}
    alice_client.post("/api/v1/predict", seeded, format="json")
    assert alice_client.post("/api/v1/predict", seeded, format="json")["X-Cache"] == "HIT"

    unseeded = {**GREEDY, "temperature": 0.8}
    alice_client.post("/api/v1/predict", unseeded, format="json")
    assert alice_client.post("/api/v1/predict", unseeded, format="json")["X-Cache"] == "MISS"
    assert len(calls) == 3


def test_it_ignores_parameter_order_and_separates_different_parameters(alice_client, calls):
    alice_client.post("/api/v1/predict", {**GREEDY, "stop": ["x", "y"]}, format="json")
    reordered = {"stop": ["y", "x"], "max_new_tokens": 8, "temperature": 0, "prompt": GREEDY["prompt"]}
    assert alice_client.post("/api/v1/predict", reordered, format="json")["X-Cache"] == "HIT"
    assert alice_client.post("/api/v1/predict", {**GREEDY, "max_new_tokens": 9}, format="json")["X-Cache"] == "MISS"


def test_it_never_serves_another_models_answer(alice_client, staff_client, tiny_settings):
    first = alice_client.post("/api/v1/predict", GREEDY, format="json")
    assert first.json()["model"] == "tiny-a"
    switched = staff_client.post("/api/v1/providers/active", {"provider": "hf", "model": "tiny-b"}, format="json")
    assert switched.status_code == 200, switched.content
    second = alice_client.post("/api/v1/predict", GREEDY, format="json")
    assert second["X-Cache"] == "MISS"
    assert second.json()["model"] == "tiny-b"


def test_the_key_changes_with_the_model_and_its_weights():
    common = {"provider": "hf", "rendered": "hi", "params": {"max_new_tokens": 4}}
    a = cache.response_key(model="tiny-a", identity="/m/tiny-a@1", **common)
    assert a == cache.response_key(model="tiny-a", identity="/m/tiny-a@1", **common)
    assert a != cache.response_key(model="tiny-b", identity="/m/tiny-b@1", **common)
    assert a != cache.response_key(model="tiny-a", identity="/m/tiny-a@2", **common)


def test_it_counts_hits_and_misses_and_staff_can_clear(alice_client, staff_client, calls):
    alice_client.post("/api/v1/predict", GREEDY, format="json")
    alice_client.post("/api/v1/predict", GREEDY, format="json")
    stats = alice_client.get("/api/v1/cache/stats").json()
    assert stats["hits"] == 1
    assert stats["misses"] == 1
    assert stats["hit_rate"] == 0.5
    assert stats["entries"] == 1
    assert stats["ttl"] == 3600
    assert stats["max_entries"] > 0

    assert alice_client.delete("/api/v1/cache").status_code == 403
    assert staff_client.delete("/api/v1/cache").status_code == 204
    assert staff_client.get("/api/v1/cache/stats").json()["entries"] == 0
    assert alice_client.post("/api/v1/predict", GREEDY, format="json")["X-Cache"] == "MISS"
    assert len(calls) == 2
