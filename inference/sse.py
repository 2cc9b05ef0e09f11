"""Server-Sent Events framing for streamed completions (docs/api.md: predict with `stream: true`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation

from inference.protocol import CompletionRequest
from inference.providers.base import TextDelta, ToolCallDelta
from llmsite.errors import ApplicationError, error_body


def frame(data: dict[str, Any], event: str | None = None) -> bytes:
    """One SSE frame; JSON keeps every payload on one `data:` line whatever the text holds."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def tool_call_piece(event: ToolCallDelta) -> dict[str, Any]:
    """A piece of a tool call as predict and the WebSocket send it: `id` and `name` on a call's first piece only."""
    piece: dict[str, Any] = {"index": event.index}
    if event.id is not None:
        piece.update(id=event.id, name=event.name)
    piece["arguments"] = event.arguments
    return piece


async def predict_frames(first: Any, events: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """`data: {"delta"}` frames and `event: tool_call` pieces, then `event: done` (or `event: error` mid-stream).

    `first` is the event already taken from `events` (so errors before any text were answered
    with a real HTTP status). Leaving early (client gone: Django cancels this iterator) closes
    `events`, which cancels the generation in the provider.
    """
    try:
        event = first
        while True:
            if isinstance(event, TextDelta):
                yield frame({"delta": event.text})
            elif isinstance(event, ToolCallDelta):
                yield frame(tool_call_piece(event), "tool_call")
            else:  # the CompletionResult ends the stream
                # Everything the JSON response has except the text the deltas already carried.
                yield frame({k: v for k, v in event.as_dict().items() if k != "text"}, "done")
                return
            event = await anext(events)
    except ApplicationError as exc:
        yield frame(error_body(exc.code, exc.message, field=exc.field), "error")
    finally:
        await events.aclose()


def event_stream_response(frames: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> StreamingHttpResponse:
    response = StreamingHttpResponse(frames, content_type="text/event-stream; charset=utf-8", headers=headers)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each frame on at once
    return response


class EventStreamNegotiation(DefaultContentNegotiation):
    """Let `Accept: text/event-stream` through to a view that streams.

    Streaming clients (OpenAI-compatible ones, curl users) announce the event stream they
    expect; DRF would answer 406 because no DRF renderer makes it. Errors and JSON answers are
    then rendered with the first renderer (JSON).
    """

    def select_renderer(self, request: Any, renderers: list[Any], format_suffix: str | None = None) -> Any:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


class StreamRequested(HttpResponse):
    """A DRF view's answer to a valid streaming request: who asked and what, for the async view to stream.

    Authentication, CSRF, rate limits and validation all ran in the DRF view exactly as for a
    JSON request; only the generation moves to the event loop.
    """

    def __init__(self, user: Any, request: CompletionRequest, *, meter: Any = None, **options: Any):
        super().__init__(status=200)
        self.user = user
        self.request = request
        self.meter = meter  # who pays (usage.services.Meter): its limits are checked before the first frame
        self.options = options  # what the endpoint's own frames need (e.g. /v1's model name)


StartStream = Callable[[HttpRequest, StreamRequested], Awaitable[HttpResponseBase]]


def streaming_view(api_class: Any, start_stream: StartStream) -> Callable[..., Awaitable[HttpResponseBase]]:
    """An async view around a DRF APIView whose handlers return StreamRequested for streams.

    The DRF view runs in a worker thread and answers everything but streams; `start_stream`
    then serves the stream on the event loop, so a streamed answer never holds a thread.
    """
    sync_view = api_class.as_view()

    @csrf_exempt  # as DRF views are: the DRF view enforces CSRF for session-authenticated callers
    async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = await sync_to_async(sync_view)(request, *args, **kwargs)
        if not isinstance(response, StreamRequested):
            return response
        return await start_stream(request, response)

    # drf-spectacular documents a view through `cls`: this view is described as `api_class`.
    view.cls = api_class  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    return view
