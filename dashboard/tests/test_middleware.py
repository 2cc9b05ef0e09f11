"""The metrics middleware: route names not raw paths, no database write per request, batches on flush."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY

from dashboard import services
from dashboard.middleware import UNMATCHED
from dashboard.models import RequestMetric
from dashboard.recorder import Recorder, Sample
from dashboard.tests.conftest import rows

pytestmark = pytest.mark.django_db


def inserts(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("INSERT") and "dashboard_requestmetric" in q["sql"]]


def test_it_records_the_route_not_the_raw_path(client, recorder):
    client.get("/api/v1/conversations/123")  # 401, but the URL pattern matched
    client.get("/api/v1/conversations/456")
    client.get("/no/such/page/789")
    recorder.flush()
    assert rows() == [
        ("/api/v1/conversations/<int:conversation_id>", "GET", 401),
        ("/api/v1/conversations/<int:conversation_id>", "GET", 401),
        (UNMATCHED, "GET", 404),
    ]
    assert not RequestMetric.objects.filter(endpoint__contains="123").exists()


def test_it_records_method_status_latency_and_the_user(staff_client, staff, recorder):
    staff_client.get("/healthz")
    staff_client.post("/api/v1/metrics")  # 405
    staff_client.generic("BREW", "/healthz")
    recorder.flush()
    by_method = {m.method: m for m in RequestMetric.objects.all()}
    assert set(by_method) == {"GET", "POST", "OTHER"}  # unknown methods never become new label values
    assert by_method["GET"].endpoint == "/healthz" and by_method["GET"].status == 200
    assert by_method["POST"].endpoint == "/api/v1/metrics" and by_method["POST"].status == 405
    assert by_method["POST"].user_id == staff.pk  # DRF authenticated the session user
    assert all(0 < m.latency_ms < 10_000 for m in by_method.values())
    assert not any(m.streamed for m in by_method.values())


def test_it_writes_nothing_per_request_and_one_insert_per_batch(client, recorder):
    with CaptureQueriesContext(connection) as during:
        for _ in range(30):
            assert client.get("/healthz").status_code == 200
    assert inserts(during.captured_queries) == []
    assert RequestMetric.objects.count() == 0
    assert len(recorder) == 30

    with CaptureQueriesContext(connection) as flushing:
        assert recorder.flush() == 30
    assert len(inserts(flushing.captured_queries)) == 1
    assert RequestMetric.objects.filter(endpoint="/healthz").count() == 30
    assert len(recorder) == 0


def test_it_counts_requests_in_prometheus_by_route_method_and_status(client):
    labels = {"endpoint": "/api/v1/conversations/<int:conversation_id>", "method": "GET", "status": "401"}
    before = REGISTRY.get_sample_value("llmsite_http_requests_total", labels) or 0
    client.get("/api/v1/conversations/1")
    client.get("/api/v1/conversations/2")
    assert REGISTRY.get_sample_value("llmsite_http_requests_total", labels) == before + 2
    count = REGISTRY.get_sample_value("llmsite_http_request_duration_seconds_count", labels)
    assert count is not None and count >= 2


def test_it_is_left_out_when_metrics_are_disabled(settings, client):
    labels = {"endpoint": "/healthz", "method": "GET", "status": "200"}
    before = REGISTRY.get_sample_value("llmsite_http_requests_total", labels) or 0
    settings.METRICS_ENABLED = False
    assert client.get("/healthz").status_code == 200
    assert len(services.get_recorder()) == 0
    assert (REGISTRY.get_sample_value("llmsite_http_requests_total", labels) or 0) == before


# --- the recorder alone ----------------------------------------------------------------------


def sample(n: int = 0) -> Sample:
    return Sample(datetime.now(UTC), f"/e{n}", "GET", 200, 1.0, False, None)


def test_the_flusher_thread_writes_a_full_batch_at_once_and_the_rest_on_stop():
    batches: list[int] = []
    flushed = threading.Event()  # on_tick: the flusher's flush has returned
    recorder = Recorder(
        lambda batch: batches.append(len(batch)), interval=60, batch_size=5, max_buffer=100, on_tick=flushed.set
    )
    for i in range(5):
        recorder.record(sample(i))
    assert flushed.wait(30), "a full batch must not wait for the interval"
    for i in range(5, 7):
        recorder.record(sample(i))  # less than a batch: it waits for the interval, or for stop()
    assert batches == [5] and len(recorder) == 2
    recorder.stop()
    assert batches == [5, 2]
    assert len(recorder) == 0


def test_the_flusher_thread_writes_a_partial_batch_after_the_interval():
    seen: list[int] = []
    recorder = Recorder(lambda batch: seen.append(len(batch)), interval=0.05, batch_size=100, max_buffer=100)
    recorder.record(sample())
    deadline = time.monotonic() + 30  # a generous bound: the interval is 0.05 s
    while not seen:  # written by the flusher itself: stop() below would write it too
        assert time.monotonic() < deadline, "the interval passed and nothing was written"
        time.sleep(0.02)
    recorder.stop()
    assert seen == [1]


def test_a_failed_write_keeps_the_samples_and_a_full_buffer_drops_new_ones():
    fail = True
    written: list[int] = []

    def sink(batch):
        if fail:
            raise RuntimeError("database is locked")
        written.append(len(batch))

    recorder = Recorder(sink, interval=60, batch_size=2, max_buffer=4, background=False)
    for i in range(6):
        recorder.record(sample(i))
    assert len(recorder) == 4 and recorder.dropped == 2
    assert recorder.flush() == 0
    assert len(recorder) == 4  # kept for the next flush
    fail = False
    assert recorder.flush() == 4
    assert written == [2, 2] and len(recorder) == 0
