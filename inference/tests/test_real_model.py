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


def test_it_answers_from_a_document_it_could_not_know_and_names_it(alice, alice_client, smollm2, tmp_path, settings):
    from embeddings import services as embeddings

    settings.EMBEDDINGS_DIR = tmp_path / "embeddings"
    try:
        get_engine().set(smollm2)
        embeddings.document_add(
            user=alice,
            documents=[
                {"text": "The llmsite staging server is named kestrel-7.", "metadata": {"title": "Servers"}},
                {"text": "Lunch is served in the canteen at noon.", "metadata": {"title": "Canteen"}},
            ],
            collection="ops",
        )
        body = {
            "prompt": "What is the llmsite staging server named?",
            "collection": "ops",
            "top_k": 1,
            "temperature": 0,
            "max_new_tokens": 32,
        }
        response = alice_client.post("/api/v1/predict", body, format="json")
        assert response.status_code == 200, response.content
        assert "kestrel-7" in response.json()["text"]
        assert [source["title"] for source in response.json()["sources"]] == ["Servers"]
    finally:
        embeddings.reset_store()
