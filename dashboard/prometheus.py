"""Prometheus metrics: what the middleware and the inference records count, and what a scrape reads live.

Counters and histograms live in this process (prometheus-client's default registry). With
several worker processes set PROMETHEUS_MULTIPROC_DIR (an empty folder, wiped at each start)
before the workers start: prometheus-client then keeps the values in files there and
`exposition()` sums them over the workers. The live figures (response cache, model state, the
model pool, embedding index) are read at scrape time by `SiteCollector` from the process that answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

# Seconds; spans a cached answer (~ms) to a long generation.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

HTTP_REQUESTS = Counter(
    "llmsite_http_requests",
    "HTTP requests by URL pattern (route), method and status.",
    ["endpoint", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "llmsite_http_request_duration_seconds",
    "Time until the response started (streams: until their headers), by route, method and status.",
    ["endpoint", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
HTTP_STREAMS = Counter("llmsite_http_streams", "Streaming responses started (SSE, downloads), by route.", ["endpoint"])
ACTIVE_STREAMS = Gauge(
    "llmsite_http_streams_active",
    "Streaming responses being sent right now, by route.",
    ["endpoint"],
    multiprocess_mode="livesum",
)
EVENT_LOOP_LAG = Histogram(
    "llmsite_event_loop_lag_seconds",
    "How late the web process's event loop woke a task that asked to sleep 0.1 s (a blocked loop shows here).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
INFERENCE_REQUESTS = Counter(
    "llmsite_inference_requests",
    "Completion requests (usage records), by provider, model, source, status and whether the cache answered.",
    ["provider", "model", "source", "status", "cached"],
)
INFERENCE_TOKENS = Counter(
    "llmsite_inference_tokens",
    "Tokens of completion requests: kind=completion are the tokens generated, kind=prompt the input.",
    ["provider", "model", "kind"],
)
INFERENCE_TTFT = Histogram(
    "llmsite_inference_time_to_first_token_seconds",
    "Time to the first generated token of uncached completions.",
    ["provider", "model"],
    buckets=LATENCY_BUCKETS,
)


def observe_request(*, endpoint: str, method: str, status: int, seconds: float, streamed: bool) -> None:
    code = str(status)
    HTTP_REQUESTS.labels(endpoint, method, code).inc()
    HTTP_LATENCY.labels(endpoint, method, code).observe(seconds)
    if streamed:
        HTTP_STREAMS.labels(endpoint).inc()


def observe_inference(record: Any) -> None:
    """Count one InferenceRecord (called when it is created)."""
    provider, model = record.provider, record.model
    INFERENCE_REQUESTS.labels(provider, model, record.source, record.status, str(bool(record.cached)).lower()).inc()
    if record.completion_tokens:
        INFERENCE_TOKENS.labels(provider, model, "completion").inc(record.completion_tokens)
    if record.prompt_tokens:
        INFERENCE_TOKENS.labels(provider, model, "prompt").inc(record.prompt_tokens)
    if record.ttft_ms is not None and not record.cached:
        INFERENCE_TTFT.labels(provider, model).observe(record.ttft_ms / 1000)


class SiteCollector:
    """Figures read at scrape time: the response cache counters, the model's state, the pool, the embedding index."""

    def describe(self) -> list[Metric]:
        # Nothing: without it the registry would collect at registration (import time), reading
        # the database and asking remote providers for their models before the site is up.
        return []

    def collect(self) -> Iterator[Metric]:
        for part in (self._cache, self._model, self._pool, self._embeddings, self._recorder):
            try:
                yield from part()
            except Exception:  # a failing source must not take the whole scrape down
                logger.exception("collecting %s for /metrics failed", part.__name__)

    def _cache(self) -> Iterator[Metric]:
        from inference import cache

        stats = cache.stats()
        hits = CounterMetricFamily("llmsite_response_cache_hits", "Response cache hits (shared by every worker).")
        hits.add_metric([], stats["hits"])
        misses = CounterMetricFamily("llmsite_response_cache_misses", "Response cache misses (shared).")
        misses.add_metric([], stats["misses"])
        yield from (hits, misses)
        if stats.get("entries") is not None:
            yield GaugeMetricFamily(
                "llmsite_response_cache_entries", "Answers in the response cache.", stats["entries"]
            )

    def _model(self) -> Iterator[Metric]:
        from inference.engine import FAILED, IDLE, LOADING, READY, get_engine

        status = get_engine().status()
        state = GaugeMetricFamily(
            "llmsite_model_state", "1 for the state the served model is in (this process).", labels=["state"]
        )
        for name in (IDLE, LOADING, READY, FAILED):
            state.add_metric([name], 1.0 if status.state == name else 0.0)
        yield state
        if status.provider:
            info = GaugeMetricFamily(
                "llmsite_model_info", "The served provider, model and device (value 1).", labels=["provider", "model"]
            )
            info.add_metric([status.provider, status.model or ""], 1.0)
            yield info

    def _pool(self) -> Iterator[Metric]:
        from inference.selectors import models_list

        loaded = GaugeMetricFamily(
            "llmsite_model_loaded", "1 for a model loaded in this process's pool, else 0.", labels=["model"]
        )
        memory = GaugeMetricFamily(
            "llmsite_model_memory_bytes", "Resident memory of a loaded local model's runner process.", labels=["model"]
        )
        queue = GaugeMetricFamily("llmsite_model_queue", "Requests running or waiting on a model.", labels=["model"])
        labels = ["model", "replica"]
        up = GaugeMetricFamily(
            "llmsite_upstream_up",
            "1 while a replica of a remote model is in service, 0 while it is out.",
            labels=labels,
        )
        in_flight = GaugeMetricFamily(
            "llmsite_upstream_in_flight",
            "Requests running on a replica of a remote model (this process).",
            labels=labels,
        )
        failures = CounterMetricFamily(
            "llmsite_upstream_failures",
            "Failures of a replica of a remote model (requests and probes; this process).",
            labels=labels,
        )
        for row in models_list():  # asks each loaded runner over its socket: cheap
            if row["kind"] == "embedding":
                continue  # not a pool model (its index is llmsite_embedding_index_vectors)
            loaded.add_metric([row["id"]], float(row["state"] == "loaded"))
            if row.get("memory_mb") is not None:
                memory.add_metric([row["id"]], row["memory_mb"] * 2**20)  # runners measure MiB
            queue.add_metric([row["id"]], float(row.get("queue") or 0))
            for replica in row.get("replicas", ()):
                up.add_metric([row["id"], replica["url"]], float(replica["healthy"]))
                in_flight.add_metric([row["id"], replica["url"]], float(replica["in_flight"]))
                failures.add_metric([row["id"], replica["url"]], float(replica["failures"]))
        yield from (loaded, memory, queue, up, in_flight, failures)

    def _embeddings(self) -> Iterator[Metric]:
        from embeddings.services import store_status

        status = store_status()  # never loads the index: a scrape must stay cheap
        if "vectors" in status:
            yield GaugeMetricFamily(
                "llmsite_embedding_index_vectors",
                "Vectors in the loaded FAISS index (this process).",
                status["vectors"],
            )

    def _recorder(self) -> Iterator[Metric]:
        from dashboard.services import recorder_stats

        stats = recorder_stats()
        yield GaugeMetricFamily(
            "llmsite_request_metrics_buffered", "Request samples waiting to be written.", stats["buffered"]
        )
        dropped = CounterMetricFamily(
            "llmsite_request_metrics_dropped", "Request samples dropped because the buffer was full."
        )
        dropped.add_metric([], stats["dropped"])
        yield dropped


_site_collector = SiteCollector()
REGISTRY.register(_site_collector)


def exposition_for(accept: str) -> tuple[bytes, str]:
    """The scrape body and its content type (text format, or OpenMetrics when `accept` asks for it)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(_site_collector)
    else:
        registry = REGISTRY
    encoder, content_type = exposition.choose_encoder(accept)
    return encoder(registry), content_type
