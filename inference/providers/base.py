"""The provider protocol: what every model backend (local or remote) offers the engine.

Plain Python, no Django: a provider takes its configuration as constructor arguments, so it
can be tested and benchmarked without a server. One module per provider under
`inference/providers/`; the engine holds the active one.

Methods that child classes must implement
------------------------------------------
- `load()` / `close()`: acquire and release weights, clients, threads. `load()` raises
  `ProviderUnavailable` with a reason a person can act on.
- `count_tokens(text)`, `context_window`: so callers can reject prompts that cannot fit.
- `generate(request) -> Completion`: blocking; call it from a worker thread, never the loop.
- `stream(request)`: an async iterator of `TextDelta` events, then exactly one `StreamEnd`
  carrying the usage and `finish_reason`. Closing the iterator (`aclose()`, task
  cancellation, `break`) cancels the generation within one token.

Optional: `render(request)` (the exact text the model sees, used for cache keys),
`identity` (changes whenever the weights change), `agenerate(request)`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Role = Literal["system", "user", "assistant"]
# Remote providers pass on why the upstream withheld an answer: "content_filter" (OpenAI), "refusal" (Anthropic).
FinishReason = Literal["stop", "length", "cancelled", "content_filter", "refusal"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")


class ProviderError(Exception):
    """A provider failed; `permanent=False` means trying again later may succeed."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class ProviderUnavailable(ProviderError):
    """The provider cannot serve at all (not configured, model missing, device absent)."""

    def __init__(self, message: str, *, permanent: bool = True):
        super().__init__(message, permanent=permanent)


class PromptTooLong(ProviderError):
    """The prompt plus room for one new token does not fit the model's context window."""

    def __init__(self, tokens: int, limit: int):
        super().__init__(f"the prompt has {tokens} tokens; this model's context window is {limit}", permanent=True)
        self.tokens = tokens
        self.limit = limit


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: a plain `prompt` or chat `messages` (exactly one), and sampling parameters.

    `temperature == 0` is greedy decoding; a `seed` makes sampling repeatable.
    """

    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        if self.messages is not None and not isinstance(self.messages, tuple):
            object.__setattr__(self, "messages", tuple(self.messages))
        if not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")

    @classmethod
    def from_messages(cls, messages: Sequence[dict[str, str] | Message], **params: Any) -> GenerationRequest:
        converted = tuple(m if isinstance(m, Message) else Message(m["role"], m["content"]) for m in messages)
        return cls(messages=converted, **params)

    @property
    def deterministic(self) -> bool:
        """Whether the same request always yields the same text (greedy, or seeded sampling)."""
        return self.temperature == 0 or self.seed is not None

    def sampling_params(self) -> dict[str, Any]:
        """The parameters that shape the output; the cache key hashes them by name."""
        return {
            "max_new_tokens": self.max_new_tokens,
            # Greedy ignores temperature/top_p/seed: drop them, so equal outputs share one key.
            "temperature": self.temperature,
            "top_p": self.top_p if self.temperature > 0 else None,
            "seed": self.seed if self.temperature > 0 else None,
            "stop": list(self.stop),
        }


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage
    finish_reason: FinishReason
    # Seconds from the start of generation to the first token (None when nothing was produced).
    ttft: float | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text, in order; concatenated deltas are the completion text."""

    text: str


@dataclass(frozen=True)
class StreamEnd:
    """The last event of a stream."""

    usage: Usage
    finish_reason: FinishReason
    text: str = ""
    ttft: float | None = None


StreamEvent = TextDelta | StreamEnd


@dataclass(frozen=True)
class ModelInfo:
    name: str
    detail: str = ""


@dataclass
class Availability:
    available: bool
    reason: str = ""
    models: list[ModelInfo] = field(default_factory=list)


class Provider:
    """Base class of model backends; see the module docstring for the contract."""

    name: ClassVar[str] = ""

    def __init__(self, model: str):
        self.model = model

    # --- lifecycle ----------------------------------------------------------------------
    def load(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources; safe to call twice."""

    # --- tokens -------------------------------------------------------------------------
    @property
    def context_window(self) -> int:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        raise NotImplementedError

    def render(self, request: GenerationRequest) -> str:
        """The exact input the model sees; equal renders with equal parameters give equal outputs."""
        if request.prompt is not None:
            return request.prompt
        return json.dumps([[m.role, m.content] for m in request.messages or ()], ensure_ascii=False)

    @property
    def identity(self) -> str:
        """What distinguishes these weights from others of the same name (a revision, a checksum)."""
        return self.model

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(self.model)]

    # --- generation ---------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Completion:
        raise NotImplementedError

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError

    async def agenerate(self, request: GenerationRequest) -> Completion:
        """`generate` for async callers: collects the stream, so it never blocks the event loop."""
        parts: list[str] = []
        async for event in self.stream(request):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            else:
                return Completion("".join(parts), event.usage, event.finish_reason, event.ttft)
        raise ProviderError("the stream ended without usage")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}:{self.model}>"
