"""The runner protocol: one Unix-socket connection per call, one JSON object per line.

The client sends one request line; the runner answers:

- `{"op": "info"}` → one line: the model's facts and the runner's state (`RunnerInfo` fields).
- `{"op": "render", "request": R}` → `{"text": ...}`; `{"op": "count", "text": T}` → `{"tokens": n}`.
- `{"op": "generate", "request": R, "ids": [...], "stream": bool}` → with `stream`, `{"delta": text}`
  lines as tokens are produced (with `"logprobs": [...]`, those of its tokens, when the request asked
  for them), then `{"end": {...}}`; the client closing the connection cancels it.
- `{"op": "score", "request": R, "ids": [...]}` → `{"scores": [null, {...}, ...]}`: the log-probabilities of
  the prompt's own tokens (`Provider.score`).
  `ids` (optional) are the prompt's token ids, already prepared by the client with the same
  tokenizer, so the runner spends no time (and no GIL) on rendering and tokenising.

Any call may answer `{"error": {...}}` instead (the provider error, with its kind, rebuilt on
the client side as the same exception class). R is a `GenerationRequest` as `request_to_dict` writes it.
"""

from __future__ import annotations

import json
from typing import Any

from inference.providers.base import (
    Completion,
    GenerationRequest,
    Message,
    PromptTooLong,
    ProviderError,
    ProviderUnavailable,
    SamplingParams,
    TokenLogprob,
    Tool,
    ToolCall,
    Usage,
)
from inference.providers.batching import QueueFull
from inference.providers.constraints import ResponseFormat

# The longest line either side accepts: prompts are bounded far below this (LLM_MAX_PROMPT_CHARS).
MAX_LINE = 32 * 1024 * 1024


def encode(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    frame = json.loads(line)
    if not isinstance(frame, dict):
        raise ValueError("a frame is a JSON object")
    return frame


def request_to_dict(request: GenerationRequest) -> dict[str, Any]:
    sampling = request.sampling
    return {
        "prompt": request.prompt,
        "messages": [m.as_dict() for m in request.messages] if request.messages is not None else None,
        "sampling": {
            "max_new_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stop": list(sampling.stop) if sampling.stop is not None else None,
            "seed": sampling.seed,
        },
        "response_format": request.response_format.as_dict() if request.response_format is not None else None,
        "tools": [tool.as_dict() for tool in request.tools],
        "tool_choice": request.tool_choice,
        "parallel_tool_calls": request.parallel_tool_calls,
        "logprobs": request.logprobs,
        "raw_prompt": request.raw_prompt,
    }


def request_from_dict(values: dict[str, Any]) -> GenerationRequest:
    messages = values.get("messages")
    return GenerationRequest(
        prompt=values.get("prompt"),
        messages=tuple(Message.from_dict(m) for m in messages) if messages is not None else None,
        sampling=SamplingParams(**values.get("sampling", {})),
        response_format=ResponseFormat.from_dict(values.get("response_format")),
        tools=tuple(Tool.from_dict(t) for t in values.get("tools") or ()),
        tool_choice=values.get("tool_choice", "auto"),
        parallel_tool_calls=values.get("parallel_tool_calls", True),
        logprobs=values.get("logprobs"),
        raw_prompt=bool(values.get("raw_prompt", False)),
    )


def completion_to_dict(completion: Completion) -> dict[str, Any]:
    return {
        "text": completion.text,
        "prompt_tokens": completion.usage.prompt_tokens,
        "completion_tokens": completion.usage.completion_tokens,
        "finish_reason": completion.finish_reason,
        "ttft": completion.ttft,
        "tool_calls": [call.as_dict() for call in completion.tool_calls],
        "logprobs": logprobs_to_list(completion.logprobs),
    }


def logprobs_to_list(logprobs: tuple[TokenLogprob, ...] | None) -> list[dict[str, Any]] | None:
    return [entry.as_dict() for entry in logprobs] if logprobs is not None else None


def logprobs_from_list(values: list[dict[str, Any]] | None) -> tuple[TokenLogprob, ...] | None:
    return tuple(TokenLogprob.from_dict(v) for v in values) if values is not None else None


def scores_to_list(scores: tuple[TokenLogprob | None, ...]) -> list[dict[str, Any] | None]:
    """A prompt's scores (`Provider.score`): the first is None."""
    return [entry.as_dict() if entry is not None else None for entry in scores]


def scores_from_list(values: list[dict[str, Any] | None]) -> tuple[TokenLogprob | None, ...]:
    return tuple(TokenLogprob.from_dict(v) if v is not None else None for v in values)


def completion_from_dict(values: dict[str, Any]) -> Completion:
    usage = Usage(values["prompt_tokens"], values["completion_tokens"])
    return Completion(
        values["text"],
        usage,
        values["finish_reason"],
        values.get("ttft"),
        tool_calls=tuple(ToolCall.from_dict(c) for c in values.get("tool_calls") or ()),
        logprobs=logprobs_from_list(values.get("logprobs")),
    )


def error_to_dict(exc: BaseException) -> dict[str, Any]:
    """A failure as a frame; anything that is not a provider error becomes a generic, retryable one."""
    if isinstance(exc, PromptTooLong):
        return {"kind": "prompt_too_long", "tokens": exc.tokens, "limit": exc.limit, "message": exc.message}
    if isinstance(exc, QueueFull):
        return {"kind": "queue_full", "limit": exc.limit, "message": exc.message}
    if isinstance(exc, ProviderUnavailable):
        return {"kind": "unavailable", "message": exc.message, "permanent": exc.permanent}
    if isinstance(exc, ProviderError):
        return {"kind": "error", "message": exc.message, "permanent": exc.permanent}
    return {"kind": "error", "message": f"generation failed: {exc}", "permanent": False}


def error_from_dict(values: dict[str, Any]) -> ProviderError:
    kind = values.get("kind")
    if kind == "prompt_too_long":
        return PromptTooLong(values["tokens"], values["limit"])
    if kind == "queue_full":
        return QueueFull(values["limit"])
    if kind == "unavailable":
        return ProviderUnavailable(values["message"], permanent=values.get("permanent", True))
    return ProviderError(values.get("message", "the runner failed"), permanent=values.get("permanent", False))
