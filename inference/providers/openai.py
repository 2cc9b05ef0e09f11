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

Structured output, tools and logprobs are the API's own, so they pass through as they are:
`response_format`, `tools`, `tool_choice`, `parallel_tool_calls`, assistant `tool_calls` and `tool`
messages, `logprobs`/`top_logprobs`. Back come `delta.tool_calls` pieces (the first of a call with
its id and name; `ToolCallDelta`), `choices[0].logprobs.content` per chunk (`TextDelta.logprobs`),
and `delta.refusal` (finish reason "refusal") when the model declines a structured answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from httpx_sse import ServerSentEvent

from inference.providers.base import (
    TOOL_ROLE,
    FinishReason,
    GenerationRequest,
    Message,
    ModelInfo,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from inference.providers.constraints import ResponseFormat
from inference.providers.remote import (
    RemoteProvider,
    UpstreamError,
    check_tool_messages,
    new_call_id,
    parse_json,
)
from llmsite.error_codes import ErrorCode

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DONE = "[DONE]"

# OpenAI's finish reasons → ours. A content filter is passed on as it is, so a client can tell
# "the answer was withheld" from "the model finished". Whether the answer is tool calls is read from
# the calls themselves: OpenAI says "stop" when tool_choice named the function, Ollama always does.
FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",  # TGI and some older servers
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "length": "length",
    "content_filter": "content_filter",
}


@dataclass
class _PendingCall:
    """A streamed tool call as its pieces arrive."""

    id: str
    name: str
    arguments: str = ""


class OpenAIStream:
    """Reads one Chat Completions stream; `feed` one SSE event at a time."""

    end_marker = "data: [DONE]"

    def __init__(self, provider: OpenAIProvider, request: GenerationRequest):
        self.provider = provider
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.deltas = 0
        self.calls: list[_PendingCall] = []
        self.call_at: dict[int, int] = {}  # the upstream's index of a call → ours (its place in `calls`)
        self.refused = False
        self.pending_logprobs: list[TokenLogprob] = []  # logprobs of a chunk without text go with the next text

    def feed(self, sse: ServerSentEvent) -> list[StreamEvent]:
        if sse.data == DONE:
            return self._end()
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
            delta = choice.get("delta") or {}
            self.pending_logprobs += read_logprobs(choice.get("logprobs"))
            content = delta.get("content")
            if content:
                self.deltas += 1
                logprobs, self.pending_logprobs = self.pending_logprobs, []
                events.append(TextDelta(content, tuple(logprobs) if logprobs else None))
            if delta.get("refusal"):  # a structured answer declined: its text is the reason
                self.refused = True
                self.deltas += 1
                events.append(TextDelta(delta["refusal"]))
            for position, piece in enumerate(delta.get("tool_calls") or ()):
                events.append(self._call_piece(position, piece))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _call_piece(self, position: int, piece: dict[str, Any]) -> ToolCallDelta:
        function = piece.get("function") or {}
        arguments = function.get("arguments") or ""
        upstream_index = int(piece.get("index", position))
        at = self.call_at.get(upstream_index)
        # A piece with another id at a known index is a new call (servers that send each call whole at index 0).
        if at is None or (piece.get("id") and piece["id"] != self.calls[at].id):
            call = _PendingCall(piece.get("id") or new_call_id(), function.get("name") or "", arguments)
            self.call_at[upstream_index] = len(self.calls)
            self.calls.append(call)
            return ToolCallDelta(len(self.calls) - 1, arguments, call.id, call.name)
        self.calls[at].arguments += arguments
        return ToolCallDelta(at, arguments)

    def _end(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for index, call in enumerate(self.calls):
            if not call.arguments:  # a call without parameters, from a server that sends no "{}"
                call.arguments = "{}"
                events.append(ToolCallDelta(index, "{}"))
        reason: FinishReason = FINISH_REASONS.get(self.finish_reason or "stop", "stop")
        if self.refused and reason == "stop":
            reason = "refusal"
        elif self.calls and reason in ("stop", "tool_calls"):
            reason = "tool_calls"
        elif reason == "tool_calls":
            reason = "stop"  # said so, but called nothing
        calls = tuple(ToolCall(c.id, c.name, c.arguments) for c in self.calls)
        events.append(StreamEnd(self._usage(), reason, tool_calls=calls))
        return events

    def _usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        # A server that ignores stream_options.include_usage: each chunk carries about one
        # token on the servers we know (vLLM, Ollama, llama.cpp), so that is the estimate.
        return Usage(0, self.deltas)


def read_logprobs(value: Any) -> list[TokenLogprob]:
    """A choice's `logprobs` (`{"content": [{token, logprob, top_logprobs: [...]}]}`) as TokenLogprobs."""
    if not value:
        return []
    return [
        TokenLogprob(
            str(item["token"]),
            float(item["logprob"]),
            tuple((str(top["token"]), float(top["logprob"])) for top in item.get("top_logprobs") or ()),
        )
        for item in value.get("content") or ()
    ]


def openai_messages(request: GenerationRequest) -> list[dict[str, Any]]:
    """The request's input as Chat Completions messages; a plain prompt becomes one user message."""
    if request.prompt is not None:
        return [{"role": "user", "content": request.prompt}]
    return [openai_message(m) for m in request.messages or ()]


def openai_message(message: Message) -> dict[str, Any]:
    item: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        item["content"] = message.content or None  # OpenAI's own shape for a turn that only calls
        item["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.role == TOOL_ROLE:
        item["tool_call_id"] = message.tool_call_id
    return item


def openai_tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = json.loads(tool.parameters)
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def openai_tool_choice(choice: str) -> str | dict[str, Any]:
    if choice.startswith("function:"):
        return {"type": "function", "function": {"name": choice.partition(":")[2]}}
    return choice  # none, auto, required


def openai_response_format(response_format: ResponseFormat) -> dict[str, Any]:
    if response_format.type == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": response_format.name, "schema": json.loads(response_format.schema)}
    if response_format.strict is not None:
        spec["strict"] = response_format.strict
    return {"type": "json_schema", "json_schema": spec}


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

    def _new_parser(self, request: GenerationRequest) -> OpenAIStream:
        return OpenAIStream(self, request)

    def check_response_format(self, response_format: ResponseFormat) -> None:
        """Every response_format passes through: the upstream enforces it, and `check_answer` checks the result."""

    def check_features(self, request: GenerationRequest) -> None:
        """Tools, logprobs and response_format all pass through; tool results must name their call."""
        check_tool_messages(request)

    def _request_body(self, request: GenerationRequest) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "messages": openai_messages(request),
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
        if request.response_format is not None:
            body["response_format"] = openai_response_format(request.response_format)
        if request.tools:
            body["tools"] = [openai_tool(tool) for tool in request.tools]
            # Only what differs from the API's defaults: compatible servers know fewer fields than OpenAI.
            if request.tool_choice != "auto":
                body["tool_choice"] = openai_tool_choice(request.tool_choice)
            if not request.parallel_tool_calls:
                body["parallel_tool_calls"] = False
        if request.logprobs is not None:
            body["logprobs"] = True
            if request.logprobs:
                body["top_logprobs"] = request.logprobs
        return body
