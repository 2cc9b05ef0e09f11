"""The provider protocol: what every model backend (local or remote) offers the engine.

Plain Python, no Django: a provider takes its configuration as constructor arguments, so it
can be tested and benchmarked without a server. One module per provider under
`inference/providers/`; the engine holds the active one.

Methods that child classes must implement
------------------------------------------
- `load()` / `close()`: acquire and release weights, clients, threads. `load()` raises
  `ProviderUnavailable` with a reason a person can act on.
- `count_tokens(text)`: the text's length in this model's tokens; exact where the provider
  has the tokenizer, an estimate where only the upstream has it (remote APIs).
- `context_window`: the model's window in tokens, or None where only the upstream knows it
  (it then refuses a prompt that does not fit, and that refusal comes back as an error).
- `generate(request) -> Completion`: blocking; call it from a worker thread, never the loop.
- `stream(request)`: an async iterator of `TextDelta` events, then exactly one `StreamEnd`
  carrying the usage and `finish_reason`. Closing the iterator (`aclose()`, task
  cancellation, `break`) cancels the generation within one token.

Optional: `render(request)` (the exact text the model sees, used for cache keys),
`identity` (changes whenever the weights change), `agenerate(request)`, and
`check_response_format` for a provider that enforces `response_format` (`inference/providers/constraints.py`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from llmsite.chat import ROLES, Role

if TYPE_CHECKING:  # constraints.py imports this module
    from inference.providers.constraints import ResponseFormat

# Remote providers pass on why the upstream withheld an answer: "content_filter" (OpenAI), "refusal" (Anthropic).
# "tool_calls": the answer is calls of the request's tools (`Completion.tool_calls`), not text.
FinishReason = Literal["stop", "length", "cancelled", "content_filter", "refusal", "tool_calls"]
FINISH_REASONS: tuple[str, ...] = get_args(FinishReason)

MAX_STOP = 4  # stop sequences one request may give
SEED_MAX = 2**63 - 1  # seeds are 64-bit on every engine
TEMPERATURE_MAX = 2
# Tiny positive temperatures and top_p mean what small ones do, but engines fail on them (OpenVINO
# rounds 1e-50 to a float32 0 and refuses it; logits / 1e-50 overflow): below TINY a temperature is
# greedy decoding and a top_p is TINY (either way, only the likeliest token is left).
TINY = 1e-5


class InvalidParameter(ValueError):
    """A request field is out of bounds; `field` names it (dotted for nested fields)."""

    def __init__(self, field: str, message: str, *, code: str = "invalid"):
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code


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


TOOL_ROLE = "tool"  # a tool's result, sent back by the client (`Message.tool_call_id` names the call)
ENGINE_ROLES: tuple[str, ...] = (*ROLES, TOOL_ROLE)  # conversations store ROLES; engines also take tool results
MAX_TOOLS = 128  # OpenAI's limit on tools per request
MAX_TOP_LOGPROBS = 20  # OpenAI's limit on top_logprobs


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool the model made: `arguments` is the JSON text of the arguments object."""

    id: str
    name: str
    arguments: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ToolCall:
        return cls(values["id"], values["name"], values["arguments"])


@dataclass(frozen=True)
class Message:
    """A chat turn. An assistant turn may carry `tool_calls` (its content may then be empty); a `tool`
    turn carries one call's result in `content`, and `tool_call_id` names that call."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The turn as a plain dict; the tool fields only when set (so plain turns stay {role, content})."""
        values: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            values["tool_calls"] = [call.as_dict() for call in self.tool_calls]
        if self.tool_call_id is not None:
            values["tool_call_id"] = self.tool_call_id
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Message:
        return cls(
            values["role"],
            values.get("content") or "",
            tuple(ToolCall.from_dict(c) for c in values.get("tool_calls") or ()),
            values.get("tool_call_id"),
        )


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, what it does, and its parameters' JSON Schema (compact JSON text)."""

    name: str
    description: str = ""
    parameters: str = '{"type": "object", "properties": {}}'
    strict: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": self.strict,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Tool:
        return cls(values["name"], values.get("description", ""), values["parameters"], values.get("strict"))


# How the model may use the tools: "none" (answer in text), "auto" (text or calls, its choice),
# "required" (at least one call), or the name of the one function it must call ("function:NAME").
ToolChoice = str


@dataclass(frozen=True)
class TokenLogprob:
    """One token's log-probability under the model (natural log), and the likeliest alternatives at its position."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"token": self.token, "logprob": self.logprob, "top": [list(pair) for pair in self.top]}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TokenLogprob:
        return cls(values["token"], values["logprob"], tuple((t, lp) for t, lp in values.get("top", ())))


@dataclass(frozen=True)
class SamplingParams:
    """How to sample, defined once for every entry point, service and engine.

    `None` means "not set": `resolved(*layers)` fills each unset value from the first layer that
    sets it (the model's defaults, then the site's), then from `FALLBACKS`. A new sampling
    parameter is one field here (plus its check in `__post_init__` and its fallback), then the
    entry points' parsers and the engines that honour it.
    """

    max_new_tokens: int | None = None
    temperature: float | None = None  # 0 is greedy decoding
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None  # makes sampling repeatable

    FALLBACKS: ClassVar[dict[str, Any]] = {
        "max_new_tokens": 128,
        "temperature": 0.0,
        "top_p": 1.0,
        "stop": (),
        "seed": None,
    }

    def __post_init__(self) -> None:
        if self.stop is not None and not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.temperature is not None:
            temperature = float(self.temperature)
            object.__setattr__(self, "temperature", 0.0 if 0 <= temperature < TINY else temperature)
        if self.top_p is not None:
            top_p = float(self.top_p)
            object.__setattr__(self, "top_p", TINY if 0 < top_p < TINY else top_p)
        if self.max_new_tokens is not None and (not _is_int(self.max_new_tokens) or self.max_new_tokens < 1):
            raise InvalidParameter("max_new_tokens", "max_new_tokens must be an integer of at least 1")
        if self.temperature is not None and not 0 <= self.temperature <= TEMPERATURE_MAX:
            raise InvalidParameter("temperature", f"temperature must be between 0 and {TEMPERATURE_MAX:g}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise InvalidParameter("top_p", "top_p must be greater than 0 and at most 1")
        if self.stop is not None:
            if len(self.stop) > MAX_STOP:
                raise InvalidParameter("stop", f"at most {MAX_STOP} stop sequences")
            if not all(isinstance(s, str) and s for s in self.stop):
                raise InvalidParameter("stop", "stop sequences must be non-empty strings")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed <= SEED_MAX):
            raise InvalidParameter("seed", f"seed must be an integer from 0 to {SEED_MAX}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SamplingParams:
        """The sampling values among `values` (other keys are ignored; None stays unset)."""
        return cls(**{name: values[name] for name in cls.names() if values.get(name) is not None})

    def resolved(self, *layers: Mapping[str, Any], max_new_tokens_cap: int | None = None) -> SamplingParams:
        """Every value set: this request's, else the first layer's that has it, else FALLBACKS.

        `max_new_tokens_cap` bounds the result (the site's limit holds whatever a default says).
        """
        values = {}
        for name in self.names():
            value = getattr(self, name)
            for layer in layers:
                if value is not None:
                    break
                value = layer.get(name)
            values[name] = value if value is not None else self.FALLBACKS[name]
        if max_new_tokens_cap is not None:
            values["max_new_tokens"] = min(int(values["max_new_tokens"]), max_new_tokens_cap)
        return SamplingParams(**values)

    def merged(self, **overrides: Any) -> SamplingParams:
        """A copy with some values replaced."""
        return replace(self, **overrides)

    @property
    def greedy(self) -> bool:
        return not self.temperature

    @property
    def deterministic(self) -> bool:
        """Whether the same request always yields the same text (greedy, or seeded sampling)."""
        return self.greedy or self.seed is not None

    def cache_params(self) -> dict[str, Any]:
        """The values that shape the output; the cache key hashes them by name."""
        return {
            "max_new_tokens": self.max_new_tokens,
            # Greedy ignores temperature/top_p/seed: drop them, so equal outputs share one key.
            "temperature": self.temperature or 0.0,
            "top_p": self.top_p if not self.greedy else None,
            "seed": self.seed if not self.greedy else None,
            "stop": list(self.stop or ()),
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_input(prompt: str | None, messages: Sequence[Any] | None) -> None:
    """The one rule on a request's input: exactly one of a plain prompt or chat messages, with known roles."""
    if (prompt is None) == (messages is None):
        raise InvalidParameter("prompt", "give exactly one of prompt or messages")
    if messages is not None:
        if not messages:
            raise InvalidParameter("messages", "messages must not be empty")
        for index, message in enumerate(messages):
            if message.role not in ENGINE_ROLES:
                raise InvalidParameter(f"messages.{index}.role", f"role must be one of {', '.join(ENGINE_ROLES)}")


def as_messages(messages: Sequence[Mapping[str, str] | Message] | None) -> tuple[Message, ...] | None:
    """Chat turns as Message values, from dicts (parsers) or Messages."""
    if messages is None:
        return None
    return tuple(m if isinstance(m, Message) else Message.from_dict(m) for m in messages)


@dataclass(frozen=True)
class GenerationRequest:
    """What a provider generates from: the full input the model sees, and every sampling value set.

    Built by the inference services from a client's `inference.protocol.CompletionRequest`
    (history, retrieved passages and defaults applied); tests and benchmarks build it directly.
    `response_format` (None: free text) is the shape the answer must have, already checked
    (`ResponseFormat.parse`); local engines enforce it token by token.
    `tools`/`tool_choice`/`parallel_tool_calls`: the functions the model may call and how (see `ToolChoice`).
    `logprobs`: None for none; k (0 to MAX_TOP_LOGPROBS) for each generated token's log-probability and
    its k likeliest alternatives (`Completion.logprobs`).
    `raw_prompt`: the prompt is the model's input verbatim, without the chat template (legacy completions).
    """

    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    response_format: ResponseFormat | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    logprobs: int | None = None
    raw_prompt: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", as_messages(self.messages))
        check_input(self.prompt, self.messages)
        if self.raw_prompt and self.prompt is None:
            raise InvalidParameter("messages", "only a prompt can be given verbatim (raw_prompt)")
        if self.logprobs is not None and (not _is_int(self.logprobs) or not 0 <= self.logprobs <= MAX_TOP_LOGPROBS):
            raise InvalidParameter("top_logprobs", f"top_logprobs is 0 to {MAX_TOP_LOGPROBS}")
        object.__setattr__(self, "sampling", self.sampling.resolved())

    @classmethod
    def from_messages(cls, messages: Sequence[Mapping[str, str] | Message], **sampling: Any) -> GenerationRequest:
        return cls(messages=as_messages(messages), sampling=SamplingParams(**sampling))

    @property
    def deterministic(self) -> bool:
        return self.sampling.deterministic

    def cache_params(self) -> dict[str, Any]:
        """What shapes the output beside the input: the sampling values, and the response format when one is set."""
        params = self.sampling.cache_params()
        if self.response_format is not None:
            params["response_format"] = self.response_format.as_dict()
        if self.tools:
            params["tools"] = [tool.as_dict() for tool in self.tools]
            params["tool_choice"] = self.tool_choice
            params["parallel_tool_calls"] = self.parallel_tool_calls
        if self.logprobs is not None:
            params["logprobs"] = self.logprobs
        if self.raw_prompt:
            params["raw_prompt"] = True
        return params


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
    tool_calls: tuple[ToolCall, ...] = ()  # with finish_reason "tool_calls"; `text` is then what came before them
    logprobs: tuple[TokenLogprob, ...] | None = None  # when the request asked for them: one per generated token


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text, in order; concatenated deltas are the completion text.

    `logprobs`, when the request asked for them, are those of the tokens this piece is made of."""

    text: str
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call, streamed as OpenAI streams them: the first piece of call `index` carries its
    `id` and `name`, every piece a piece of its `arguments` JSON text (concatenated: the whole)."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class StreamEnd:
    """The last event of a stream."""

    usage: Usage
    finish_reason: FinishReason
    text: str = ""
    ttft: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()  # the whole calls, when the stream made some (also sent as ToolCallDelta)


StreamEvent = TextDelta | ToolCallDelta | StreamEnd


@dataclass(frozen=True)
class ModelInfo:
    name: str
    detail: str = ""


class Provider:
    """Base class of model backends; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    engine: ClassVar[str] = ""  # what computes the answers: "transformers", "openvino"; "" for a remote API

    def __init__(self, model: str):
        self.model = model
        self.engine_note = ""  # why this engine serves rather than the preferred one ('' when it is the preferred)

    # --- lifecycle ----------------------------------------------------------------------
    def load(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources; safe to call twice."""

    # --- tokens -------------------------------------------------------------------------
    @property
    def context_window(self) -> int | None:
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

    def check_response_format(self, response_format: ResponseFormat) -> None:
        """Raise InvalidParameter unless generate/stream enforce `response_format` on this model (none does here)."""
        raise InvalidParameter("response_format", f"{self.model} cannot enforce response_format; only local models can")

    def score(self, request: GenerationRequest, ids: list[int] | None = None) -> tuple[TokenLogprob | None, ...]:
        """The log-probabilities of the rendered prompt's own tokens, each with `request.logprobs` alternatives;
        the first token has nothing before it (None). `ids`: the prompt's tokens, when already prepared.
        Raises InvalidParameter where the provider cannot (remote APIs: only local models score prompts)."""
        raise InvalidParameter("echo", f"{self.model} cannot return the prompt's log-probabilities")

    def check_features(self, request: GenerationRequest) -> None:
        """Raise InvalidParameter (naming the field) for what this provider cannot do for `request`:
        tools, logprobs, response_format. By default only response_format is checked; providers that
        serve tools or logprobs override this."""
        if request.response_format is not None:
            self.check_response_format(request.response_format)
        if request.tools and request.tool_choice != "none":
            raise InvalidParameter("tools", f"{self.model} cannot call tools")
        if request.logprobs is not None:
            raise InvalidParameter("logprobs", f"{self.model} cannot return logprobs")

    # --- generation ---------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Completion:
        raise NotImplementedError

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError

    async def agenerate(self, request: GenerationRequest) -> Completion:
        """`generate` for async callers: collects the stream, so it never blocks the event loop."""
        parts: list[str] = []
        logprobs: list[TokenLogprob] | None = None
        async for event in self.stream(request):
            if isinstance(event, TextDelta):
                parts.append(event.text)
                if event.logprobs is not None:
                    logprobs = (logprobs or []) + list(event.logprobs)
            elif isinstance(event, StreamEnd):
                return Completion(
                    "".join(parts),
                    event.usage,
                    event.finish_reason,
                    event.ttft,
                    tool_calls=event.tool_calls,
                    logprobs=tuple(logprobs) if logprobs is not None else None,
                )
        raise ProviderError("the stream ended without usage")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}:{self.model}>"
