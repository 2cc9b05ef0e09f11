"""GET /api/v1/metrics: exact aggregates for known data, the window parameter, staff only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from dashboard.models import RequestMetric

pytestmark = pytest.mark.django_db


def metric(endpoint: str, latency: float, status: int = 200, *, ago: timedelta = timedelta(minutes=5), **extra):
    return RequestMetric(
        created=timezone.now() - ago, endpoint=endpoint, method="GET", status=status, latency_ms=latency, **extra
    )


def test_after_a_known_mix_of_requests_it_reports_exactly_those(staff_client, alice_client, recorder):
    for _ in range(3):
        staff_client.get("/healthz")
    staff_client.get("/api/v1/conversations/41")  # 404: not staff's
    staff_client.get("/api/v1/conversations/42")
    alice_client.get("/api/v1/providers")
    staff_client.get("/missing")
    recorder.flush()

    body = staff_client.get("/api/v1/metrics?window=1h").json()
    assert body["requests"]["total"] == 7
    assert body["requests"]["client_errors"] == 3
    assert body["requests"]["server_errors"] == 0
    counts = {e["endpoint"]: e["requests"] for e in body["endpoints"]}
    assert counts == {
        "/healthz": 3,
        "/api/v1/conversations/<int:conversation_id>": 2,
        "/api/v1/providers": 1,
        "<unmatched>": 1,
    }
    assert {s["status"]: s["count"] for s in body["status_codes"]} == {200: 4, 404: 3}
    assert sum(point["requests"] for point in body["timeline"]) == 7
    assert body["bucket"] == "minute" and 60 <= len(body["timeline"]) <= 61


def test_latency_average_and_nearest_rank_percentiles_per_endpoint(staff_client):
    RequestMetric.objects.bulk_create(
        [metric("/a", float(ms)) for ms in range(1, 101)] + [metric("/b", 10.0), metric("/b", 30.0)]
    )
    endpoints = {e["endpoint"]: e for e in staff_client.get("/api/v1/metrics").json()["endpoints"]}
    assert endpoints["/a"]["requests"] == 100
    assert endpoints["/a"]["avg_ms"] == 50.5
    assert endpoints["/a"]["p50_ms"] == 50.0
    assert endpoints["/a"]["p95_ms"] == 95.0
    assert endpoints["/a"]["max_ms"] == 100.0
    assert (endpoints["/b"]["p50_ms"], endpoints["/b"]["p95_ms"], endpoints["/b"]["avg_ms"]) == (10.0, 30.0, 20.0)
    assert [e["endpoint"] for e in staff_client.get("/api/v1/metrics").json()["endpoints"]] == ["/a", "/b"]


def test_the_window_bounds_what_is_counted(staff_client):
    RequestMetric.objects.bulk_create(
        [
            metric("/recent", 1.0, ago=timedelta(minutes=30)),
            metric("/day", 1.0, ago=timedelta(hours=5)),
            metric("/week", 1.0, ago=timedelta(days=3)),
            metric("/month", 1.0, ago=timedelta(days=20)),
            metric("/ancient", 1.0, ago=timedelta(days=40)),
        ]
    )

    def seen(window: str) -> set[str]:
        return {e["endpoint"] for e in staff_client.get(f"/api/v1/metrics?window={window}").json()["endpoints"]}

    assert seen("1h") == {"/recent"}
    assert seen("24h") == {"/recent", "/day"}
    assert seen("7d") == {"/recent", "/day", "/week"}
    assert seen("30d") == {"/recent", "/day", "/week", "/month"}
    body = staff_client.get("/api/v1/metrics?window=30d").json()
    assert body["bucket"] == "day" and sum(p["requests"] for p in body["timeline"]) == 4


@pytest.mark.parametrize("query", ["window=2h", "window=", "window=1H", "windw=1h"])
def test_an_unknown_window_or_parameter_is_a_400(staff_client, query):
    response = staff_client.get(f"/api/v1/metrics?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["field"] in ("window", "windw")


def test_only_staff_may_read_it(client, alice_client):
    response = client.get("/api/v1/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    response = alice_client.get("/api/v1/metrics")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_inference_cache_share_tokens_per_second_and_time_to_first_token(staff_client):
    from inference.models import InferenceRecord

    rows = [
        # generated: 100 tokens in 2 s and 50 tokens in 3 s -> 150 / 5 = 30 tokens/s
        dict(completion_tokens=100, latency_ms=2000, ttft_ms=100),
        dict(completion_tokens=50, latency_ms=3000, ttft_ms=300),
        # answered from the cache: counts for the hit rate, not for the speed
        dict(completion_tokens=100, latency_ms=1, ttft_ms=0.5, cached=True),
        # a failure: neither
        dict(completion_tokens=0, latency_ms=10, status="error"),
    ]
    for row in rows:
        InferenceRecord.objects.create(provider="hf", model="tiny", prompt_tokens=5, **row)
    InferenceRecord.objects.create(provider="openai", model="gpt", completion_tokens=10, latency_ms=500, ttft_ms=50)

    inference = staff_client.get("/api/v1/metrics").json()["inference"]
    assert inference["cache"]["requests"] == 5
    assert inference["cache"]["cached"] == 1
    assert inference["cache"]["hit_rate"] == 0.2
    assert set(inference["cache"]["lifetime"]) == {"hits", "misses", "hit_rate"}
    models = {(m["provider"], m["model"]): m for m in inference["models"]}
    tiny = models[("hf", "tiny")]
    assert tiny["requests"] == 4 and tiny["cached"] == 1 and tiny["errors"] == 1
    assert tiny["completion_tokens"] == 250
    assert tiny["tokens_per_second"] == 30.0
    assert tiny["ttft_avg_ms"] == 200.0
    assert (tiny["ttft_p50_ms"], tiny["ttft_p95_ms"]) == (100.0, 300.0)
    assert models[("openai", "gpt")]["tokens_per_second"] == 20.0


def test_feedback_per_day_split_by_rating(staff_client, alice, bob):
    from feedback.models import Feedback

    Feedback.objects.create(user=alice, rating=1, prompt="p", response="r")
    Feedback.objects.create(user=bob, rating=1, prompt="p", response="r")
    old = Feedback.objects.create(user=bob, rating=-1, prompt="p", response="r")
    Feedback.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=2))
    Feedback.objects.create(user=alice, rating=-1, prompt="p", response="r")

    feedback = staff_client.get("/api/v1/metrics?window=7d").json()["feedback"]
    assert feedback["bucket"] == "day"
    assert (feedback["up"], feedback["down"]) == (2, 2)
    days = [p for p in feedback["timeline"] if p["up"] or p["down"]]
    assert [(p["up"], p["down"]) for p in days] == [(0, 1), (2, 1)]
    assert len(feedback["timeline"]) in (7, 8)

    last_day = staff_client.get("/api/v1/metrics?window=24h").json()["feedback"]
    assert (last_day["bucket"], last_day["up"], last_day["down"]) == ("hour", 2, 1)


def test_training_runs_come_with_their_loss_curves(staff_client):
    from training.models import EpochMetric, TrainingRun

    older = TrainingRun.objects.create(name="older", base_model="base", status="succeeded")
    latest = TrainingRun.objects.create(name="latest", base_model="base", status="running")
    for epoch, loss in enumerate([2.0, 1.5, 1.2], start=1):
        EpochMetric.objects.create(
            run=latest, epoch=epoch, step=epoch * 10, train_loss=loss, eval_loss=loss + 0.1,
            learning_rate=1e-4, tokens_per_second=100, seconds=epoch,
        )  # fmt: skip
    training = staff_client.get("/api/v1/metrics").json()["training"]
    assert training["available"] is True
    assert [run["name"] for run in training["runs"]] == ["latest", "older"]
    assert [(e["epoch"], e["train_loss"], e["eval_loss"]) for e in training["runs"][0]["epochs"]] == [
        (1, 2.0, 2.1),
        (2, 1.5, 1.6),
        (3, 1.2, 1.3),
    ]
    assert training["runs"][1]["id"] == older.pk and training["runs"][1]["epochs"] == []


def test_embedding_index_size_counts_documents_and_chunks(staff_client, alice):
    from embeddings.models import Collection, Document

    collection = Collection.objects.create(name="c", owner=alice)
    source = Document.objects.create(owner=alice, collection=collection, text="long", content_hash="a", indexed=False)
    for i in range(3):
        Document.objects.create(
            owner=alice, collection=collection, text=f"chunk {i}", content_hash=f"c{i}", source=source, chunk_index=i
        )
    Document.objects.create(owner=alice, collection=collection, text="short", content_hash="b")
    embeddings = staff_client.get("/api/v1/metrics").json()["embeddings"]
    assert (embeddings["documents"], embeddings["chunks"], embeddings["indexed"]) == (2, 3, 4)
    assert embeddings["collections"] == 1
    assert "state" in embeddings["index"]


def test_old_metrics_are_pruned_after_the_retention(settings):
    settings.METRICS_RETENTION_DAYS = 30
    RequestMetric.objects.bulk_create(
        [metric("/old", 1.0, ago=timedelta(days=31)), metric("/new", 1.0, ago=timedelta(days=29))]
    )
    call_command("prune_metrics", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert list(RequestMetric.objects.values_list("endpoint", flat=True)) == ["/new"]
    call_command("prune_metrics", "--days", "1", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert not RequestMetric.objects.exists()


def test_usage_ranks_users_keys_and_models_by_tokens_or_by_spend(staff_client, alice, bob):
    from accounts.services import api_key_create
    from usage.services import ledger_add

    alice_key, _ = api_key_create(user=alice, name="laptop")
    now = timezone.now()

    def use(user, api_key, model, prompt, completion, cost, *, at=now):
        ledger_add(
            user=user, api_key=api_key, model=model, kind="completion",
            prompt_tokens=prompt, completion_tokens=completion, cost=cost, at=at,
        )  # fmt: skip

    # alice: the most tokens (cheap, local); bob: fewer tokens but the most spend (a priced model).
    use(alice, alice_key, "tiny", 600, 400, 0)
    use(alice, alice_key, "tiny", 300, 200, 0)
    use(alice, None, "tiny", 50, 50, 0)
    use(bob, None, "gpt", 100, 100, 2_500_000)  # 2.5 in the currency unit
    use(bob, None, "gpt", 10, 10, 0, at=now - timedelta(days=3))  # outside 24h, inside 7d

    usage = staff_client.get("/api/v1/metrics?window=24h").json()["usage"]
    assert usage["order"] == "tokens" and usage["currency"] == "USD"
    assert [(r["name"], r["requests"], r["total_tokens"], r["cost"]) for r in usage["top_users"]] == [
        ("alice", 3, 1600, 0.0),
        ("bob", 1, 200, 2.5),
    ]
    assert [r["id"] for r in usage["top_users"]] == [alice.pk, bob.pk]
    keys = usage["top_keys"]
    assert [(r["id"], r["requests"], r["total_tokens"]) for r in keys] == [(alice_key.pk, 2, 1500), (None, 2, 300)]
    assert (keys[0]["name"], keys[0]["user"], keys[0]["prefix"]) == ("laptop", "alice", alice_key.display_prefix)
    assert [(r["name"], r["total_tokens"], r["cost"]) for r in usage["top_models"]] == [
        ("tiny", 1600, 0.0),
        ("gpt", 200, 2.5),
    ]

    by_spend = staff_client.get("/api/v1/metrics?window=24h&usage_order=spend").json()["usage"]
    assert by_spend["order"] == "spend"
    assert [r["name"] for r in by_spend["top_users"]] == ["bob", "alice"]
    assert [r["name"] for r in by_spend["top_models"]] == ["gpt", "tiny"]

    week = staff_client.get("/api/v1/metrics?window=7d").json()["usage"]
    assert [(r["name"], r["requests"]) for r in week["top_users"]] == [("alice", 3), ("bob", 2)]


def test_usage_is_empty_without_a_ledger_and_its_order_is_checked(staff_client):
    usage = staff_client.get("/api/v1/metrics").json()["usage"]
    assert (usage["top_users"], usage["top_keys"], usage["top_models"]) == ([], [], [])
    response = staff_client.get("/api/v1/metrics?usage_order=cost")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "usage_order"
