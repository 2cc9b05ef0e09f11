"""Anthropic's Messages API (`POST {base}/v1/messages`), streamed, behind the provider protocol.

Plain Python, no Django. The base URL is configurable for proxies and gateways that speak the
same API; the key goes in `x-api-key`. Wire format of the stream (named events, no `[DONE]`):
`message_start` (input usage), then per content block `content_block_start` /
`content_block_delta` (`text_delta`) / `content_block_stop`, then `message_delta` (stop reason,
cumulative output usage), `message_stop`; `ping` anywhere; `error` anywhere, also mid-stream.

OpenAI's features are translated to this API's own:

- `tools` → tools with an `input_schema`; `tool_choice` none/auto/required/named → none/auto/any/tool;
  `parallel_tool_calls: false` → `disable_parallel_tool_use`. An assistant turn's `tool_calls` become
  `tool_use` blocks; `tool` messages become a user turn of `tool_result` blocks (consecutive results, one turn).
  Back, a `tool_use` block is a tool call: its `content_block_start` gives the id and name, its
  `input_json_delta` pieces the arguments; stop reason "tool_use" is finish reason "tool_calls".
- `response_format` → one more tool, the answer tool, whose input schema is the requested schema
  (`{"type": "object"}` for json_object) and which the model must call; its input is the answer's JSON
  text. This API's tool input is an object, so a schema whose top level is not an object is refused.
- `logprobs`: this API has none; refused with a 400 naming the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from httpx_sse import ServerSentEvent

from inference.providers.base import (
    TOOL_ROLE,
    FinishReason,
    GenerationRequest,
    InvalidParameter,
    ModelInfo,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from inference.providers.constraints import ResponseFormat
from inference.providers.remote import RemoteProvider, UpstreamError, check_tool_messages, parse_json
from llmsite.error_codes import ErrorCode

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # what this API accepts as a tool name
ANSWER_TOOL = "json_answer"  # the answer tool's name when the schema's own name cannot be one

# Anthropic's stop reasons → ours. Refusals are passed on as they are, so a client can tell
# "the model declined" from "the model finished".
FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",  # "tool_calls" when the client's tools were called; the answer tool's answer is text
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
}


class AnthropicStream:
    """Reads one Messages stream; `feed` one SSE event at a time."""

    end_marker = "message_stop"

    def __init__(self, provider: AnthropicProvider, request: GenerationRequest):
        self.provider = provider
        self.answer_tool = answer_tool_name(request)
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.stop_reason: str | None = None
        self.calls: list[list[str]] = []  # [id, name, arguments so far] per tool call, in order
        self.blocks: dict[int, int | None] = {}  # a tool_use block's index → its call's (None: the answer tool)
        self.answer_text = 0  # characters of the answer tool's input so far

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
        elif kind == "content_block_start":
            return self._block_start(int(data["index"]), data["content_block"])
        elif kind == "content_block_delta":
            delta = data["delta"]
            if delta.get("type") == "text_delta" and delta["text"]:
                return [TextDelta(delta["text"])]
            if delta.get("type") == "input_json_delta":
                return self._input_piece(int(data["index"]), delta["partial_json"])
            # Other deltas (thinking, signatures) are not for the client.
        elif kind == "content_block_stop":
            return self._block_stop(int(data["index"]))
        elif kind == "message_delta":
            self.stop_reason = data["delta"].get("stop_reason") or self.stop_reason
            self._count(data.get("usage") or {})
        elif kind == "message_stop":
            reason: FinishReason = FINISH_REASONS.get(self.stop_reason or "end_turn", "stop")
            if self.calls and reason == "stop":
                reason = "tool_calls"
            calls = tuple(ToolCall(*call) for call in self.calls)
            return [StreamEnd(Usage(self.prompt_tokens, self.completion_tokens), reason, tool_calls=calls)]
        # Event types added later carry nothing we need.
        return []

    def _block_start(self, index: int, block: dict[str, Any]) -> list[StreamEvent]:
        if block.get("type") != "tool_use":
            return []
        if block["name"] == self.answer_tool:
            self.blocks[index] = None
            return []
        self.blocks[index] = len(self.calls)
        self.calls.append([str(block["id"]), str(block["name"]), ""])
        return [ToolCallDelta(len(self.calls) - 1, "", str(block["id"]), str(block["name"]))]

    def _input_piece(self, index: int, piece: str) -> list[StreamEvent]:
        if index not in self.blocks or not piece:
            return []
        at = self.blocks[index]
        if at is None:  # the answer tool's input is the answer
            self.answer_text += len(piece)
            return [TextDelta(piece)]
        self.calls[at][2] += piece
        return [ToolCallDelta(at, piece)]

    def _block_stop(self, index: int) -> list[StreamEvent]:
        # A tool_use block whose input is {} may come without a single input_json_delta.
        if index not in self.blocks:
            return []
        at = self.blocks[index]
        if at is None:
            return [] if self.answer_text else [TextDelta("{}")]
        if self.calls[at][2]:
            return []
        self.calls[at][2] = "{}"
        return [ToolCallDelta(at, "{}")]

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


def answer_tool_name(request: GenerationRequest) -> str | None:
    """The answer tool's name when `request` answers through one (a response_format, and no call of the
    client's own tools required), else None."""
    if request.response_format is None or (request.tools and request.tool_choice not in ("none", "auto")):
        return None
    name = request.response_format.name
    taken = {tool.name for tool in request.tools}
    if not TOOL_NAME.fullmatch(name) or name in taken:
        name = ANSWER_TOOL
        while name in taken:
            name += "_"
    return name


def answer_tool(response_format: ResponseFormat, name: str) -> dict[str, Any]:
    """The tool whose input is the answer, shaped by `response_format`."""
    what = f"in the {response_format.name} format" if response_format.name else "as a JSON object"
    return {
        "name": name,
        "description": f"Give your answer {what}: this tool's input is the whole answer.",
        "input_schema": json.loads(response_format.schema_json()),
    }


def anthropic_tool(tool: Tool) -> dict[str, Any]:
    values: dict[str, Any] = {"name": tool.name}
    if tool.description:
        values["description"] = tool.description
    values["input_schema"] = json.loads(tool.parameters)
    return values


def anthropic_tool_choice(request: GenerationRequest, answer: str | None) -> dict[str, Any] | None:
    """The `tool_choice` for `request` (None: the API's default, auto)."""
    if answer is not None:
        # Only the answer tool may answer, unless the client's tools may be called: then one of them or it.
        choice = (
            {"type": "any"} if request.tools and request.tool_choice == "auto" else {"type": "tool", "name": answer}
        )
    elif request.tool_choice == "none":
        return {"type": "none"}
    elif request.tool_choice == "required":
        choice = {"type": "any"}
    elif request.tool_choice.startswith("function:"):
        choice = {"type": "tool", "name": request.tool_choice.partition(":")[2]}
    else:
        choice = {"type": "auto"}
    if not request.parallel_tool_calls:
        choice["disable_parallel_tool_use"] = True
    elif choice == {"type": "auto"}:
        return None
    return choice


def call_input(arguments: str) -> dict[str, Any] | None:
    """A call's JSON arguments as the object a `tool_use` block's input is (None: not a JSON object)."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def anthropic_messages(request: GenerationRequest) -> tuple[list[dict[str, Any]], str]:
    """The request's input as Messages turns, and the system prompt (which this API takes apart)."""
    if request.prompt is not None:
        return [{"role": "user", "content": request.prompt}], ""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in request.messages or ():
        if message.role == "system":
            system.append(message.content)
        elif message.role == TOOL_ROLE:
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
            if message.content:
                result["content"] = message.content
            last = turns[-1] if turns else None
            if last is not None and last.get("results"):
                last["content"].append(result)  # consecutive results answer one turn's calls: one user turn
            else:
                turns.append({"role": "user", "content": [result], "results": True})
        elif message.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": call_input(c.arguments) or {}}
                for c in message.tool_calls
            ]
            turns.append({"role": message.role, "content": blocks})
        else:
            turns.append({"role": message.role, "content": message.content})
    for turn in turns:
        turn.pop("results", None)
    return turns, "\n\n".join(system)


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

    def _new_parser(self, request: GenerationRequest) -> AnthropicStream:
        return AnthropicStream(self, request)

    def check_response_format(self, response_format: ResponseFormat) -> None:
        """The answer tool's input is a JSON object: a schema must describe one at its top level."""
        schema = json.loads(response_format.schema_json())
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise InvalidParameter(
                "response_format.json_schema.schema",
                f"{self.model} answers in a schema through a tool, whose input is a JSON object:"
                ' the schema\'s top level must be {"type": "object", ...}',
            )

    def check_features(self, request: GenerationRequest) -> None:
        """Tools and response_format are translated; logprobs are refused (this API has none)."""
        if request.logprobs is not None:
            raise InvalidParameter("logprobs", f"{self.model} cannot return logprobs: Anthropic's API has none")
        if request.response_format is not None:
            self.check_response_format(request.response_format)
        check_tool_messages(request)
        for index, message in enumerate(request.messages or ()):
            for number, call in enumerate(message.tool_calls):
                if call_input(call.arguments) is None:
                    raise InvalidParameter(
                        f"messages.{index}.tool_calls.{number}.function.arguments",
                        "a tool call's arguments must be a JSON object",
                    )

    def _request_body(self, request: GenerationRequest) -> dict[str, Any]:
        sampling = request.sampling
        # System prompts are not messages in this API: they go in the top-level `system` field.
        messages, system = anthropic_messages(request)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": sampling.max_new_tokens,  # required by this API
            "messages": messages,
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
        answer = answer_tool_name(request)
        tools = [anthropic_tool(tool) for tool in request.tools]
        if answer is not None:
            assert request.response_format is not None
            tools.append(answer_tool(request.response_format, answer))
        if tools:
            body["tools"] = tools
            choice = anthropic_tool_choice(request, answer)
            if choice is not None:
                body["tool_choice"] = choice
        return body
