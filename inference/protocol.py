"""The one request type every completion entry point builds and every inference service takes.

REST predict (JSON and SSE), the chat WebSocket, `/v1/chat/completions` and the management
commands each parse their own wire format, then build a `CompletionRequest`; it validates
once, here. The services turn it into the provider's `GenerationRequest` with
`generation_request()`, which fills unset sampling values in one place: the request's value,
then the model's defaults (the active ProviderConfig's `parameters`), then the site's
(settings), then `SamplingParams.FALLBACKS`.

Adding a sampling parameter: a field on `SamplingParams` (inference/providers/base.py), then
the entry points' parsers (`inference/apis.py`, `inference/openai_apis.py`,
`inference/management/sampling.py`) and the engines that honour it. Nothing here changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from inference.providers.base import (
    MAX_TOP_LOGPROBS,
    GenerationRequest,
    InvalidParameter,
    Message,
    SamplingParams,
    Tool,
    ToolChoice,
    as_messages,
    check_input,
)
from inference.providers.constraints import ResponseFormat
from inference.providers.tools import parse_tool_choice, parse_tools
from llmsite.durations import BadDuration, parse_duration
from llmsite.error_codes import ErrorCode

MAX_MESSAGES = 500  # turns one request may carry
MAX_TOP_K = 50  # passages one grounded answer may retrieve
MAX_COLLECTION_CHARS = 200
MAX_MODEL_CHARS = 500
RETRIEVAL_MODES = ("vector", "keyword", "hybrid")  # embeddings.services.SEARCH_MODES, without importing embeddings


@dataclass(frozen=True)
class CompletionRequest:
    """What a client asks for: its input, sampling values (None: not set), and what to answer with.

    - `prompt` or `messages` (exactly one): the new input; with a `conversation`, only the new turns.
    - `collection` (+ `top_k`, `retrieval_mode`): ground the answer in passages retrieved from that
      collection, ranked by meaning, words or both (None: EMBEDDINGS_SEARCH_MODE).
    - `conversation`: the id of the user's conversation to continue (its history goes first).
    - `model`: the id of the model to answer (None: the conversation's model, else the site's default).
    - `keep_alive`: seconds that model stays loaded once idle (negative: forever), as Ollama's.
    - `response_format`: the shape the answer must have (None: free text), checked when parsed.
    - `logprobs`: None, or k: each generated token's log-probability with its k likeliest alternatives.
    - `raw_prompt`: the prompt is the model's input verbatim, no chat template (/v1/completions).
    - `echo`: also the prompt's own tokens' log-probabilities (needs a raw prompt and `logprobs`);
      `score_only`: only those, nothing generated (/v1/completions with max_tokens 0).
    - `tools`, `tool_choice`, `parallel_tool_calls`: functions the model may call, and how
      (`inference/providers/tools.py` checks them when parsed).

    Raises `InvalidParameter` (naming the field) when anything is out of bounds; limits that are
    settings (LLM_MAX_PROMPT_CHARS, LLM_MAX_NEW_TOKENS) are read when the request is built.
    """

    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    collection: str | None = None
    top_k: int | None = None
    retrieval_mode: str | None = None
    conversation: int | None = None
    model: str | None = None
    keep_alive: float | None = None
    response_format: ResponseFormat | None = None
    logprobs: int | None = None
    raw_prompt: bool = False
    echo: bool = False
    score_only: bool = False
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", as_messages(self.messages))
        check_input(self.prompt, self.messages)
        if self.messages is not None and len(self.messages) > MAX_MESSAGES:
            raise InvalidParameter("messages", f"at most {MAX_MESSAGES} messages")
        chars = self.input_chars
        if chars > settings.LLM_MAX_PROMPT_CHARS:
            raise InvalidParameter(
                self.input_field,
                f"the input has {chars} characters; the limit is {settings.LLM_MAX_PROMPT_CHARS}",
                code=ErrorCode.PROMPT_TOO_LONG,
            )
        limit = settings.LLM_MAX_NEW_TOKENS
        if self.sampling.max_new_tokens is not None and self.sampling.max_new_tokens > limit:
            raise InvalidParameter("max_new_tokens", f"max_new_tokens is at most {limit} on this server")
        if self.collection is not None and not 0 < len(self.collection) <= MAX_COLLECTION_CHARS:
            raise InvalidParameter("collection", f"a collection name has 1 to {MAX_COLLECTION_CHARS} characters")
        if self.top_k is not None:
            if self.collection is None:
                raise InvalidParameter("top_k", "top_k needs a collection to retrieve from")
            if not 1 <= self.top_k <= MAX_TOP_K:
                raise InvalidParameter("top_k", f"top_k is 1 to {MAX_TOP_K}")
        if self.retrieval_mode is not None:
            if self.collection is None:
                raise InvalidParameter("retrieval_mode", "retrieval_mode needs a collection to retrieve from")
            if self.retrieval_mode not in RETRIEVAL_MODES:
                raise InvalidParameter("retrieval_mode", f"retrieval_mode is one of {', '.join(RETRIEVAL_MODES)}")
        if self.conversation is not None and self.conversation < 1:
            raise InvalidParameter("conversation", "a conversation id is a positive integer")
        if self.model is not None and not 0 < len(self.model) <= MAX_MODEL_CHARS:
            raise InvalidParameter("model", f"a model id has 1 to {MAX_MODEL_CHARS} characters")
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidParameter("logprobs", f"logprobs is 0 to {MAX_TOP_LOGPROBS}")
        if self.raw_prompt and (self.prompt is None or self.conversation is not None or self.collection is not None):
            raise InvalidParameter("prompt", "a verbatim prompt goes alone: no messages, conversation or collection")
        if self.echo and (not self.raw_prompt or self.logprobs is None):
            raise InvalidParameter("echo", "the prompt's log-probabilities need a verbatim prompt and logprobs")
        if self.score_only and not self.echo:
            raise InvalidParameter("max_tokens", "max_tokens 0 is only allowed with echo")
        if self.keep_alive is not None:
            try:
                object.__setattr__(self, "keep_alive", parse_duration(self.keep_alive, "keep_alive"))
            except BadDuration as exc:
                raise InvalidParameter("keep_alive", str(exc)) from exc

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> CompletionRequest:
        """From a parser's output: the request's own keys, and the sampling values among them by name."""
        names = (
            "prompt",
            "collection",
            "top_k",
            "retrieval_mode",
            "conversation",
            "model",
            "keep_alive",
            "logprobs",
            "raw_prompt",
            "echo",
            "score_only",
        )
        own = {name: fields[name] for name in names if name in fields}
        return cls(
            messages=as_messages(fields.get("messages")),
            sampling=SamplingParams.from_mapping(fields),
            response_format=ResponseFormat.parse(fields.get("response_format")),
            **_tool_fields(fields),
            **own,
        )

    @property
    def input_field(self) -> str:
        """The field that carries the input, for errors about it."""
        return "prompt" if self.prompt is not None else "messages"

    @property
    def input_chars(self) -> int:
        chars = len(self.prompt or "") + sum(len(m.content) for m in self.messages or ())
        # Tool definitions and earlier calls are input the model reads too.
        chars += sum(len(c.arguments) for m in self.messages or () for c in m.tool_calls)
        return chars + sum(len(t.description) + len(t.parameters) for t in self.tools)

    def new_turns(self) -> list[dict[str, str]]:
        """The turns this request adds, as plain {role, content} dicts (a prompt is one user turn)."""
        if self.prompt is not None:
            return [{"role": "user", "content": self.prompt}]
        return [{"role": m.role, "content": m.content} for m in self.messages or ()]

    def generation_request(
        self, *, messages: Sequence[Mapping[str, str] | Message] | None = None, model_defaults: Mapping[str, Any]
    ) -> GenerationRequest:
        """What the provider runs: this input (or `messages`, when history or passages replace it), all values set."""
        sampling = self.sampling.resolved(
            model_defaults,
            {"max_new_tokens": settings.LLM_DEFAULT_MAX_NEW_TOKENS},
            max_new_tokens_cap=settings.LLM_MAX_NEW_TOKENS,
        )
        shape = self.response_format
        calls = {"tools": self.tools, "tool_choice": self.tool_choice, "parallel_tool_calls": self.parallel_tool_calls}
        if messages is not None:
            return GenerationRequest(
                messages=as_messages(messages),
                sampling=sampling,
                response_format=shape,
                logprobs=self.logprobs,
                **calls,
            )
        return GenerationRequest(
            prompt=self.prompt,
            messages=self.messages,
            sampling=sampling,
            response_format=shape,
            logprobs=self.logprobs,
            raw_prompt=self.raw_prompt,
            **calls,
        )


def _tool_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The tool fields among a parser's output (OpenAI's shapes), checked; none when no tools were given."""
    if fields.get("tools") is None and fields.get("tool_choice") is None:
        return {}
    tools = parse_tools(fields.get("tools"))
    parallel = fields.get("parallel_tool_calls")
    return {
        "tools": tools,
        "tool_choice": parse_tool_choice(fields.get("tool_choice"), tools),
        "parallel_tool_calls": True if parallel is None else bool(parallel),
    }
