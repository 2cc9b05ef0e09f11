"""Every completion leaves an InferenceRecord, cached or not."""

import pytest

from inference import services
from inference.models import InferenceRecord
from inference.protocol import CompletionRequest
from inference.providers.base import SamplingParams, TextDelta

pytestmark = pytest.mark.django_db


def test_it_records_each_request_with_tokens_latency_and_cache_state(alice_client, alice, serving):
    body = {"prompt": "Record me", "max_new_tokens": 4}
    alice_client.post("/api/v1/predict", body, format="json")
    alice_client.post("/api/v1/predict", body, format="json")
    miss, hit = InferenceRecord.objects.order_by("created", "id")
    assert (miss.user, miss.provider, miss.model, miss.status, miss.cached) == (alice, "hf", "tiny-a", "ok", False)
    assert miss.prompt_tokens > 0
    assert 0 < miss.completion_tokens <= 4
    assert miss.latency_ms > 0
    assert miss.ttft_ms is not None and miss.ttft_ms <= miss.latency_ms
    assert hit.cached is True
    assert hit.completion_tokens == miss.completion_tokens


def test_it_records_a_refused_prompt_as_an_error(alice_client, serving):
    alice_client.post("/api/v1/predict", {"prompt": "word " * 400}, format="json")
    record = InferenceRecord.objects.get()
    assert record.status == "error"
    assert "context window" in record.error


@pytest.mark.django_db(transaction=True)
async def test_a_stream_left_early_is_recorded_as_cancelled(serving):
    stream = services.complete_stream(
        CompletionRequest(prompt="Go", sampling=SamplingParams(max_new_tokens=200)), source="sse"
    )
    async for event in stream:
        assert isinstance(event, TextDelta)
        break
    await stream.aclose()
    record = await InferenceRecord.objects.aget()
    assert record.status == "cancelled"
    assert record.source == "sse"


@pytest.mark.django_db(transaction=True)
async def test_a_stream_ends_with_the_result_and_its_record(serving):
    events = [
        e
        async for e in services.complete_stream(
            CompletionRequest(prompt="Go", sampling=SamplingParams(max_new_tokens=6))
        )
    ]
    result = events[-1]
    assert isinstance(result, services.CompletionResult)
    assert "".join(e.text for e in events[:-1]) == result.text
    record = await InferenceRecord.objects.aget()
    assert (record.status, record.completion_tokens) == ("ok", result.usage.completion_tokens)
