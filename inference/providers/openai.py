"""OpenAI's Chat Completions API (`POST {base}/chat/completions`), streamed, behind the provider protocol.

Plain Python, no Django. The same API is spoken by OpenAI, Azure OpenAI and self-hosted
servers (vLLM, TGI, Ollama, LM Studio, llama.cpp server), so one provider serves them all:

- OpenAI and compatible servers: `Authorization: Bearer <key>` (no header when there is no
  key: local servers rarely want one), `GET {base}/models` lists the models.
- Azure (`azure_api_version` set): `{base}/openai/deployments/{deployment}/chat/completions`
  with the `api-version` query and an `api-key` header; the model name is the deployment name.

Wire format of the stream: `data: {chunk}` events, every chunk `chat.completion.chunk`; text in
`choices[0].delta.content`; `finish_reason` on the last choice chunk; with
`stream_options.include_usage` one more chunk with `choices: []` and the usage; then
`data: [DONE]`. An error may arrive in-band as `data: {"error": {...}}`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

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

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DONE = "[DONE]"

# OpenAI's finish reasons → ours. A content filter is passed on as it is, so a client can tell
# "the answer was withheld" from "the model finished".
FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",  # TGI and some older servers
    "tool_calls": "stop",
    "function_call": "stop",
    "length": "length",
    "content_filter": "content_filter",
}


class OpenAIStream:
    """Reads one Chat Completions stream; `feed` one SSE event at a time."""

    end_marker = "data: [DONE]"

    def __init__(self, provider: OpenAIProvider):
        self.provider = provider
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.deltas = 0

    def feed(self, sse: ServerSentEvent) -> list[StreamEvent]:
        if sse.data == DONE:
            return [StreamEnd(self._usage(), FINISH_REASONS.get(self.finish_reason or "stop", "stop"))]
        data = parse_json(sse, self.provider.label)
        try:
            return self._handle(data)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UpstreamError(
                f"{self.provider.label} sent a chunk of an unexpected shape",
                code=ErrorCode.UPSTREAM_BAD_RESPONSE,
                permanent=True,
            ) from exc

    def _handle(self, data: dict[str, Any]) -> list[StreamEvent]:
        error = data.get("error")
        if error:
            if isinstance(error, dict):
                kind = str(error.get("type") or error.get("code") or "")
                raise self.provider.in_band_error(kind, str(error.get("message") or ""))
            raise self.provider.in_band_error("", str(error))
        if data.get("usage"):
            usage = data["usage"]
            self.usage = Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        events: list[StreamEvent] = []
        for choice in data.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # we ask for one choice; a server that sends more gets its first read
            content = (choice.get("delta") or {}).get("content")
            if content:
                self.deltas += 1
                events.append(TextDelta(content))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        # A server that ignores stream_options.include_usage: each chunk carries about one
        # token on the servers we know (vLLM, Ollama, llama.cpp), so that is the estimate.
        return Usage(0, self.deltas)


class OpenAIProvider(RemoteProvider):
    """Chat Completions on OpenAI, Azure OpenAI or any compatible server; `model` names the model
    (on Azure: the deployment)."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str = "",
        azure_api_version: str = "",
        **options: Any,
    ):
        super().__init__(model, base_url=base_url, api_key=api_key, **options)
        self.azure_api_version = azure_api_version

    @property
    def azure(self) -> bool:
        return bool(self.azure_api_version)

    @property
    def key_required(self) -> bool:  # type: ignore[override]
        # OpenAI and Azure refuse anonymous calls; a self-hosted server usually needs no key.
        return self.azure or self.host == "api.openai.com"

    def _auth_headers(self) -> dict[str, str]:
        if not self._api_key:
            return {}
        if self.azure:
            return {"api-key": self._api_key}
        return {"authorization": f"Bearer {self._api_key}"}

    def _query_params(self) -> dict[str, str]:
        return {"api-version": self.azure_api_version} if self.azure else {}

    def _stream_path(self) -> str:
        if self.azure:
            return f"/openai/deployments/{quote(self.model, safe='')}/chat/completions"
        return "/chat/completions"

    def _models_path(self) -> str | None:
        # Azure lists base models, not the deployments a request must name: nothing useful to show.
        return None if self.azure else "/models"

    def _model_infos(self, body: Any) -> list[ModelInfo]:
        return [ModelInfo(m["id"], m.get("owned_by") or "") for m in body["data"]]

    def _new_parser(self) -> OpenAIStream:
        return OpenAIStream(self)

    def _request_body(self, request: GenerationRequest) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "messages": message_text(request.messages, request.prompt),
            # max_tokens rather than max_completion_tokens: every compatible server knows it.
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if sampling.temperature > 0 and sampling.top_p < 1:
            body["top_p"] = sampling.top_p
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        return body
