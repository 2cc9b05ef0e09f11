"""Anthropic's Messages API (`POST {base}/v1/messages`), streamed, behind the provider protocol.

Plain Python, no Django. The base URL is configurable for proxies and gateways that speak the
same API; the key goes in `x-api-key`. Wire format of the stream (named events, no `[DONE]`):
`message_start` (input usage), then per content block `content_block_start` /
`content_block_delta` (`text_delta`) / `content_block_stop`, then `message_delta` (stop reason,
cumulative output usage), `message_stop`; `ping` anywhere; `error` anywhere, also mid-stream.
"""

from __future__ import annotations

from typing import Any

from httpx_sse import ServerSentEvent

from inference.providers.base import (
    FinishReason,
    GenerationRequest,
    ModelInfo,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from inference.providers.remote import RemoteProvider, UpstreamError, message_text, parse_json
from llmsite.error_codes import ErrorCode

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"

# Anthropic's stop reasons → ours. Refusals are passed on as they are, so a client can tell
# "the model declined" from "the model finished".
FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
}


class AnthropicStream:
    """Reads one Messages stream; `feed` one SSE event at a time."""

    end_marker = "message_stop"

    def __init__(self, provider: AnthropicProvider):
        self.provider = provider
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.stop_reason: str | None = None

    def feed(self, sse: ServerSentEvent) -> list[StreamEvent]:
        if sse.event == "ping":
            return []
        data = parse_json(sse, self.provider.label)
        kind = sse.event if sse.event != "message" else str(data.get("type", ""))
        try:
            return self._handle(kind, data)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UpstreamError(
                f"{self.provider.label} sent a {kind} event of an unexpected shape",
                code=ErrorCode.UPSTREAM_BAD_RESPONSE,
                permanent=True,
            ) from exc

    def _handle(self, kind: str, data: dict[str, Any]) -> list[StreamEvent]:
        if kind == "error":
            error = data.get("error") or {}
            raise self.provider.in_band_error(str(error.get("type", "")), str(error.get("message", "")))
        if kind == "message_start":
            self._count(data["message"].get("usage") or {})
        elif kind == "content_block_delta":
            delta = data["delta"]
            # Other deltas (thinking, tool input JSON) are not text for the client.
            if delta.get("type") == "text_delta" and delta["text"]:
                return [TextDelta(delta["text"])]
        elif kind == "message_delta":
            self.stop_reason = data["delta"].get("stop_reason") or self.stop_reason
            self._count(data.get("usage") or {})
        elif kind == "message_stop":
            reason = FINISH_REASONS.get(self.stop_reason or "end_turn", "stop")
            return [StreamEnd(Usage(self.prompt_tokens, self.completion_tokens), reason)]
        # content_block_start/stop and event types added later carry nothing we need.
        return []

    def _count(self, usage: dict[str, Any]) -> None:
        # Counts are totals so far (assign, never add). Cached prompt tokens are counted apart
        # from input_tokens; together they are what the prompt cost.
        if usage.get("input_tokens") is not None:
            self.prompt_tokens = (
                int(usage["input_tokens"])
                + int(usage.get("cache_creation_input_tokens") or 0)
                + int(usage.get("cache_read_input_tokens") or 0)
            )
        if usage.get("output_tokens") is not None:
            self.completion_tokens = int(usage["output_tokens"])


class AnthropicProvider(RemoteProvider):
    """Claude through the Messages API; `model` is an Anthropic model name (e.g. claude-sonnet-4-5)."""

    name = "anthropic"

    def __init__(self, model: str, *, api_key: str, base_url: str = DEFAULT_BASE_URL, **options: Any):
        super().__init__(model, base_url=base_url, api_key=api_key, **options)

    def _auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key, "anthropic-version": API_VERSION}

    def _stream_path(self) -> str:
        return "/v1/messages"

    def _models_path(self) -> str:
        return "/v1/models?limit=1000"

    def _model_infos(self, body: Any) -> list[ModelInfo]:
        return [ModelInfo(m["id"], m.get("display_name") or "") for m in body["data"]]

    def _new_parser(self) -> AnthropicStream:
        return AnthropicStream(self)

    def _request_body(self, request: GenerationRequest) -> dict[str, Any]:
        sampling = request.sampling
        messages = message_text(request.messages, request.prompt)
        # System prompts are not messages in this API: they go in the top-level `system` field.
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": sampling.max_new_tokens,  # required by this API
            "messages": [m for m in messages if m["role"] != "system"],
            # Anthropic's range is 0..1 where ours (OpenAI's) is 0..2.
            "temperature": min(sampling.temperature, 1.0),
            "stream": True,
        }
        if system:
            body["system"] = system
        if sampling.temperature > 0 and sampling.top_p < 1:
            body["top_p"] = sampling.top_p
        if sampling.stop:
            body["stop_sequences"] = list(sampling.stop)
        return body
