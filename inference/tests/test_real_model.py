"""End to end with the real SmolLM2-135M-Instruct (slower)."""

import pytest
from django.conf import settings

from inference.engine import get_engine

pytestmark = [pytest.mark.real_model, pytest.mark.django_db]


@pytest.fixture(scope="module")
def smollm2():
    from inference.providers.hf import HFProvider
    from llmsite.model_store import ModelNotFound, resolve_llm_folder

    try:
        folder = resolve_llm_folder("SmolLM2-135M-Instruct", settings.MODELS_DIR)
    except ModelNotFound as exc:
        pytest.skip(str(exc))
    provider = HFProvider("SmolLM2-135M-Instruct", folder, device="cpu")
    provider.load()
    yield provider
    provider.close()


def test_it_answers_paris_then_serves_the_same_request_from_the_cache(alice_client, smollm2, monkeypatch):
    get_engine().set(smollm2)
    body = {"prompt": "What is the capital of France?", "max_new_tokens": 24, "temperature": 0}
    first = alice_client.post("/api/v1/predict", body, format="json")
    assert first.status_code == 200, first.content
    assert "Paris" in first.json()["text"]
    assert first["X-Cache"] == "MISS"

    monkeypatch.setattr(smollm2, "generate", lambda request: pytest.fail("a cache hit reached the provider"))
    second = alice_client.post("/api/v1/predict", body, format="json")
    assert second["X-Cache"] == "HIT"
    assert second.json()["text"] == first.json()["text"]
