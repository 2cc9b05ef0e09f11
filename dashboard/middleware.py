"""Request metrics: one sample per request, buffered in memory, plus Prometheus counters.

The endpoint is the resolved URL pattern (`/api/v1/conversations/<int:conversation_id>`),
never the raw path, so ids cannot blow up the number of series. The hot path only reads a
clock, bumps in-process counters and appends a sample to the recorder's buffer; the database
write happens in batches on the recorder's thread. Streaming responses (SSE) are measured to
the start of the response, counted, and passed through untouched: the content is wrapped in a
generator of the same kind (async stays async) that yields each chunk as it comes and keeps the
active-streams gauge.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.decorators import sync_and_async_middleware
from django.utils.functional import SimpleLazyObject, empty

from dashboard import loop_lag, prometheus
from dashboard.recorder import Sample
from dashboard.services import get_recorder

UNMATCHED = "<unmatched>"  # no URL pattern matched (a 404 before any view)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def endpoint_of(request: HttpRequest) -> str:
    """The route of the URL pattern that served `request` ("/" + route), or its name for regex patterns."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED
    route = match.route or ""
    if "^" in route or "$" in route or "(?" in route:
        # re_path() patterns (the admin's app index, catch-alls) read better by name.
        return f"name:{match.view_name}" if match.url_name else "/" + route
    return "/" + route


def _user_id(request: HttpRequest) -> int | None:
    # Only a user someone already resolved: evaluating the lazy session user here would cost
    # the requests that never needed it a session and a user query.
    user = request.__dict__.get("user")
    if user is None or (isinstance(user, SimpleLazyObject) and user._wrapped is empty):
        return None
    return user.pk if getattr(user, "is_authenticated", False) else None


def _observe(request: HttpRequest, response: HttpResponseBase, started: float, arrived: datetime) -> None:
    seconds = time.perf_counter() - started
    endpoint = endpoint_of(request)
    method = request.method if request.method in METHODS else "OTHER"
    streamed = bool(getattr(response, "streaming", False))
    prometheus.observe_request(
        endpoint=endpoint, method=method, status=response.status_code, seconds=seconds, streamed=streamed
    )
    if streamed:
        _track_stream(response, endpoint)
    get_recorder().record(
        Sample(
            created=arrived,
            endpoint=endpoint,
            method=method,
            status=response.status_code,
            latency_ms=round(seconds * 1000, 3),
            streamed=streamed,
            user_id=_user_id(request),
        )
    )


def _track_stream(response: Any, endpoint: str) -> None:
    """Wrap the stream's content so the active-streams gauge counts it while it is being sent."""
    gauge = prometheus.ACTIVE_STREAMS.labels(endpoint)
    content = response.streaming_content

    if response.is_async:

        async def tracked_async(content: AsyncIterator[bytes] = content) -> AsyncIterator[bytes]:
            gauge.inc()
            try:
                async for chunk in content:
                    yield chunk
            finally:
                gauge.dec()
                await content.aclose()  # let go of the view's generator now, not when this one is collected

        response.streaming_content = tracked_async()
    else:

        def tracked(content: Iterator[bytes] = content) -> Iterator[bytes]:
            gauge.inc()
            try:
                yield from content  # closing this generator closes `content` too
            finally:
                gauge.dec()

        response.streaming_content = tracked()


@sync_and_async_middleware
def MetricsMiddleware(get_response: Callable[..., Any]) -> Callable[..., Any]:  # noqa: N802 - like the classes beside it
    """Record every request that reaches Django (static files are served before it by WhiteNoise)."""
    if not settings.METRICS_ENABLED:
        raise MiddlewareNotUsed

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            started, arrived = time.perf_counter(), datetime.now(UTC)
            loop_lag.watch_running_loop()
            response = await get_response(request)
            _observe(request, response, started, arrived)
            return response

    else:

        def middleware(request: HttpRequest) -> HttpResponseBase:  # type: ignore[misc]
            started, arrived = time.perf_counter(), datetime.now(UTC)
            response = get_response(request)
            _observe(request, response, started, arrived)
            return response

    return middleware
