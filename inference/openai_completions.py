"""/v1/completions (OpenAI's legacy completions, what evaluation harnesses call), log-probabilities in
OpenAI's two shapes, and `n > 1` choices for both /v1 completion endpoints.

The same services as /v1/chat/completions (rate limits, usage records, the response cache): each
choice is one `services.complete` / `complete_stream` call with its own seed (seed + i when a seed
is given), and the choices run at the same time so a local model's batching scheduler decodes them
together. Each choice is reserved, metered and recorded on its own: n choices are n usage records
(and n requests against a requests-per-minute limit).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections
from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import SCOPE_CHAT
from inference import services, sse
from inference.apis import TopPField, completion_request
from inference.openai_apis import MAX_CHOICES, StopField, StreamOptionsSerializer, _finish_reason, _refuse_unknown
from inference.protocol import CompletionRequest
from inference.providers.base import SEED_MAX, TEMPERATURE_MAX, TextDelta, TokenLogprob
from inference.services import CompletionResult
from llmsite.errors import ApplicationError, error_response
from llmsite.schema import MODEL_ERRORS, event_stream
from llmsite.serializers import StrictCharField
from usage.services import Meter

MAX_PROMPTS = 16  # prompts one /v1/completions request may carry
MAX_COMPLETION_LOGPROBS = 5  # OpenAI's bound on /v1/completions' `logprobs`
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions

# OpenAI's parameters accepted at their neutral value only (anything else is a 400, never ignored).
NEUTRAL = {
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "best_of": (None, 1),
    "suffix": (None, ""),
}


def choice_requests(request: CompletionRequest, n: int) -> list[CompletionRequest]:
    """`request` once per choice: choice i samples with seed + i when a seed is given (so n choices differ
    and repeat), else each with its own random seed."""
    seed = request.sampling.seed
    if n == 1:
        return [request]
    return [
        dataclasses.replace(request, sampling=request.sampling.merged(seed=(seed + i) % (SEED_MAX + 1)))
        if seed is not None
        else request
        for i in range(n)
    ]


def complete_all(requests: Sequence[CompletionRequest], *, http: Request) -> tuple[list[CompletionResult], Meter]:
    """Every request completed at the same time (worker threads); the results in order, and the last meter."""
    meters = [Meter.for_request(http) for _ in requests]

    def one(index: int) -> CompletionResult:
        try:
            return services.complete(requests[index], user=http.user, source="openai", meter=meters[index])
        finally:
            if len(requests) > 1:
                close_old_connections()  # this worker thread's own connection

    if len(requests) == 1:
        return [one(0)], meters[0]
    with ThreadPoolExecutor(min(len(requests), MAX_CHOICES * 2), thread_name_prefix="openai-choice") as pool:
        results = list(pool.map(one, range(len(requests))))
    return results, meters[-1]


async def stream_all(
    requests: Sequence[CompletionRequest], *, user: Any, meter: Meter, request_id: uuid.UUID
) -> AsyncIterator[tuple[int, TextDelta | CompletionResult]]:
    """(choice index, event) from every request's stream, as they come. Every stream's first event is awaited
    before this yields anything, so a failure before any text raises here (a real HTTP status). Closing it
    closes every stream (cancelling their generations)."""
    streams = [
        services.complete_stream(
            request,
            user=user,
            source="openai",
            meter=meter if index == 0 else dataclasses.replace(meter, states=[]),
            request_id=request_id if index == 0 else None,
        )
        for index, request in enumerate(requests)
    ]
    firsts = await asyncio.gather(*(anext(s) for s in streams), return_exceptions=True)
    failed = next((f for f in firsts if isinstance(f, BaseException)), None)
    if failed is not None:
        for stream in streams:
            await stream.aclose()
        raise failed
    return _merged(streams, list(firsts))


async def _merged(streams: list[Any], firsts: list[Any]) -> AsyncIterator[tuple[int, Any]]:
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    done = object()

    async def pump(index: int) -> None:
        try:
            await queue.put((index, firsts[index]))
            async for event in streams[index]:
                await queue.put((index, event))
        except ApplicationError as exc:
            await queue.put((index, exc))
        finally:
            await queue.put((index, done))

    tasks = [asyncio.create_task(pump(i)) for i in range(len(streams))]
    try:
        open_streams = len(streams)
        while open_streams:
            index, event = await queue.get()
            if event is done:
                open_streams -= 1
                continue
            if isinstance(event, ApplicationError):
                raise event
            yield index, event
    finally:
        for task in tasks:
            task.cancel()
        for stream in streams:
            await stream.aclose()


# --- log-probabilities in OpenAI's shapes ---------------------------------------------------


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8", errors="surrogatepass"))


def chat_logprobs(entries: Sequence[TokenLogprob] | None) -> dict[str, Any] | None:
    """/v1/chat/completions' `logprobs`: {content: [{token, logprob, bytes, top_logprobs}], refusal: null}."""
    if entries is None:
        return None
    content = [
        {
            "token": e.token,
            "logprob": e.logprob,
            "bytes": _bytes(e.token),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": _bytes(t)} for t, lp in e.top],
        }
        for e in entries
    ]
    return {"content": content, "refusal": None}


def completion_logprobs(
    entries: Sequence[TokenLogprob | None], *, first_token: str = "", offset: int = 0
) -> dict[str, Any]:
    """/v1/completions' `logprobs`: parallel lists; a None entry (a text's first token) has null logprobs and
    is spelled `first_token`. `text_offset` counts characters from `offset` (the choice's text so far)."""
    tokens, token_logprobs, top_logprobs, text_offset = [], [], [], []
    for e in entries:
        token = e.token if e is not None else first_token
        tokens.append(token)
        token_logprobs.append(e.logprob if e is not None else None)
        top_logprobs.append(dict(e.top) if e is not None else None)
        text_offset.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    }


def first_token_text(prompt: str, scores: Sequence[TokenLogprob | None]) -> str:
    """The text of a prompt's first token, which has no score: what the other tokens' texts leave of the prompt."""
    rest = "".join(e.token for e in scores[1:] if e is not None)
    return prompt[: len(prompt) - len(rest)] if prompt.endswith(rest) else ""


# --- /v1/completions ------------------------------------------------------------------------


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_PROMPTS},
        ]
    }
)
class PromptField(serializers.Field):
    default_error_messages = {
        "invalid": f"prompt must be a string or a list of 1 to {MAX_PROMPTS} strings (token arrays are not supported)"
    }

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            return [data]
        if isinstance(data, list) and 0 < len(data) <= MAX_PROMPTS and all(isinstance(p, str) for p in data):
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


def n_field() -> serializers.IntegerField:
    return serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_CHOICES)


class CompletionChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    text = serializers.CharField()
    logprobs = serializers.DictField(allow_null=True, help_text="{tokens, token_logprobs, top_logprobs, text_offset}")
    finish_reason = serializers.CharField(help_text="`stop`, `length` or `content_filter`")


class TextCompletionSerializer(serializers.Serializer):
    """OpenAI's `text_completion` object."""

    id = serializers.CharField()
    object = serializers.CharField(help_text="`text_completion`")
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = CompletionChoiceSerializer(many=True)
    usage = serializers.DictField(child=serializers.IntegerField())
    system_fingerprint = serializers.CharField(allow_null=True)


class CompletionsApi(APIView):
    required_scope = SCOPE_CHAT

    content_negotiation_class = sse.EventStreamNegotiation

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TextCompletionRequest"

        model = StrictCharField(max_length=500)
        prompt = PromptField()
        max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=0)
        temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=TEMPERATURE_MAX)
        top_p = TopPField(allow_null=True)
        stop = StopField(required=False, allow_null=True)
        seed = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=SEED_MAX)
        n = n_field()
        echo = serializers.BooleanField(required=False, default=False, allow_null=True)
        logprobs = serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=MAX_COMPLETION_LOGPROBS
        )
        user = serializers.CharField(required=False, allow_blank=True, max_length=256)
        stream = serializers.BooleanField(required=False, default=False, allow_null=True)
        stream_options = StreamOptionsSerializer(required=False, allow_null=True)

        def to_internal_value(self, data: Any) -> Any:
            _refuse_unknown(self, data, NEUTRAL)
            return super().to_internal_value(data)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            stream, echo, logprobs = attrs.get("stream"), bool(attrs.get("echo")), attrs.get("logprobs")
            max_tokens = attrs.get("max_tokens")
            if attrs.get("stream_options") and not stream:
                raise serializers.ValidationError({"stream_options": "stream_options is only allowed with stream"})
            if max_tokens == 0 and not echo:
                raise serializers.ValidationError({"max_tokens": "max_tokens 0 is only allowed with echo"})
            if stream and echo and (logprobs is not None or max_tokens == 0):
                raise serializers.ValidationError(
                    {"echo": "echo with logprobs or max_tokens 0 is not supported with stream"}
                )
            attrs["requests"] = [
                completion_request(
                    {
                        "prompt": prompt,
                        "raw_prompt": True,
                        "max_new_tokens": max_tokens or (DEFAULT_MAX_TOKENS if max_tokens is None else None),
                        "score_only": max_tokens == 0,
                        "temperature": attrs.get("temperature"),
                        "top_p": attrs.get("top_p"),
                        "stop": attrs.get("stop") or None,
                        "seed": attrs.get("seed"),
                        "model": attrs["model"],
                        "logprobs": logprobs,
                        "echo": echo and logprobs is not None,
                    },
                    wire_names={"max_new_tokens": "max_tokens"},
                )
                for prompt in attrs["prompt"]
            ]
            return attrs

    @extend_schema(
        summary="OpenAI-compatible text completion of a verbatim prompt (legacy; streamed with `stream: true`)",
        description=(
            "The prompt is the model's input as given, without the chat template. `echo` returns the prompt "
            "before the completion and, with `logprobs`, its tokens' log-probabilities (the first is null); "
            "`max_tokens: 0` with `echo` generates nothing (scoring). `n` choices per prompt, at most "
            f"{MAX_CHOICES}; at most {MAX_PROMPTS} prompts."
        ),
        request=InputSerializer,
        responses={
            (200, "application/json"): TextCompletionSerializer,
            (200, "text/event-stream"): event_stream("with `stream: true`: `text_completion` chunks, then `[DONE]`"),
            404: OpenApiResponse(description="unknown model"),
            **MODEL_ERRORS,
        },
        tags=["openai"],
    )
    def post(self, request: Request) -> HttpResponseBase:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        n = data.get("n") or 1
        prompts: list[str] = data["prompt"]
        requests = [choice for asked in data["requests"] for choice in choice_requests(asked, n)]
        if data.get("stream"):
            options = data.get("stream_options") or {}
            return sse.StreamRequested(
                request.user,
                requests[0],
                meter=Meter.for_request(request),
                model=data["model"],
                include_usage=options.get("include_usage", False),
                requests=requests,
                prompts=[p for p in prompts for _ in range(n)],
                echo=bool(data.get("echo")),
                n=n,
            )
        results, meter = complete_all(requests, http=request)
        choices = []
        for index, result in enumerate(results):
            prompt = prompts[index // n]
            choices.append(_text_choice(index, result, prompt, echo=bool(data.get("echo")), asked=requests[index]))
        usage = _usage(results, n)
        return Response(
            {
                "id": f"cmpl-{results[0].id.removeprefix('cmpl-')}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": results[0].model_id if results[0].fallback else data["model"],
                "choices": choices,
                "usage": usage,
                "system_fingerprint": None,
            },
            headers={"X-Cache": "HIT" if all(r.cached for r in results) else "MISS", **meter.headers()},
        )


def _usage(results: Sequence[CompletionResult], n: int) -> dict[str, int]:
    """Completion tokens of every choice; each prompt's tokens once (its n choices read the same prompt)."""
    prompt_tokens = sum(r.usage.prompt_tokens for r in results[::n])
    completion_tokens = sum(r.usage.completion_tokens for r in results)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _text_choice(index: int, result: CompletionResult, prompt: str, *, echo: bool, asked: CompletionRequest):
    logprobs = None
    if asked.logprobs is not None:
        entries: list[TokenLogprob | None] = []
        first = ""
        if echo and result.prompt_logprobs is not None:
            entries += result.prompt_logprobs
            first = first_token_text(prompt, result.prompt_logprobs)
        generated = completion_logprobs(result.logprobs or (), offset=len(prompt))
        logprobs = completion_logprobs(entries, first_token=first, offset=0) if entries else None
        if logprobs is None:
            logprobs = generated
        else:
            for name in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
                logprobs[name] += generated[name]
    return {
        "index": index,
        "text": (prompt if echo else "") + result.text,
        "logprobs": logprobs,
        "finish_reason": _finish_reason(result.finish_reason),
    }


async def _text_stream(request: HttpRequest, asked: sse.StreamRequested) -> HttpResponseBase:
    request_id = uuid.uuid4()
    try:
        events = await stream_all(asked.options["requests"], user=asked.user, meter=asked.meter, request_id=request_id)
    except ApplicationError as exc:
        return error_response(request, exc)
    return sse.event_stream_response(
        _text_chunks(events, completion_id=services.completion_id(request_id), asked=asked),
        headers=asked.meter.headers(),
    )


async def _text_chunks(events: Any, *, completion_id: str, asked: sse.StreamRequested) -> AsyncIterator[bytes]:
    """`text_completion` chunks: each choice's deltas (with their log-probabilities), its finish, usage, `[DONE]`."""
    options = asked.options
    head = {
        "id": f"cmpl-{completion_id.removeprefix('cmpl-')}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": options["model"],
    }
    prompts: list[str] = options["prompts"]
    offsets = [len(p) for p in prompts]
    results: dict[int, CompletionResult] = {}

    def chunk(index: int, text: str, logprobs: Any = None, finish_reason: str | None = None) -> bytes:
        choice = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}
        return sse.frame({**head, "choices": [choice], "system_fingerprint": None})

    try:
        if options["echo"]:
            for index, prompt in enumerate(prompts):
                yield chunk(index, prompt)
        async for index, event in events:
            if isinstance(event, TextDelta):
                logprobs = None
                if event.logprobs is not None:
                    logprobs = completion_logprobs(event.logprobs, offset=offsets[index])
                    offsets[index] += sum(len(e.token) for e in event.logprobs)
                if event.text or logprobs:
                    yield chunk(index, event.text, logprobs)
            else:
                results[index] = event
                yield chunk(index, "", None, _finish_reason(event.finish_reason))
        if options["include_usage"]:
            ordered = [results[i] for i in sorted(results)]
            usage = _usage(ordered, options["n"])
            yield sse.frame({**head, "choices": [], "usage": usage, "system_fingerprint": None})
        yield b"data: [DONE]\n\n"
    except ApplicationError as exc:
        yield sse.frame({"error": {"message": exc.message, "type": "api_error", "param": None, "code": exc.code}})
    finally:
        await events.aclose()


completions = sse.streaming_view(CompletionsApi, _text_stream)


# --- /v1/chat/completions: n > 1 -------------------------------------------------------------


async def chat_stream_n(
    request: HttpRequest, asked: sse.StreamRequested, *, chunk_id: Callable[[str], str]
) -> HttpResponseBase:
    """A chat stream of n choices: each chunk carries its choice's index."""
    request_id = uuid.uuid4()
    requests = choice_requests(asked.request, asked.options["n"])
    try:
        events = await stream_all(requests, user=asked.user, meter=asked.meter, request_id=request_id)
    except ApplicationError as exc:
        return error_response(request, exc)
    head = {
        "id": chunk_id(services.completion_id(request_id)),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": asked.options["model"],
        "system_fingerprint": None,
    }
    include_usage = asked.options["include_usage"]
    extra = {"usage": None} if include_usage else {}

    async def frames() -> AsyncIterator[bytes]:
        def chunk(index: int, delta: dict[str, Any], logprobs: Any = None, finish: str | None = None) -> bytes:
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            return sse.frame({**head, "choices": [choice], **extra})

        results: list[CompletionResult] = []
        try:
            for index in range(len(requests)):
                yield chunk(index, {"role": "assistant", "content": "", "refusal": None})
            async for index, event in events:
                if isinstance(event, TextDelta):
                    if event.text or event.logprobs:
                        yield chunk(index, {"content": event.text}, chat_logprobs(event.logprobs))
                else:
                    results.append(event)
                    yield chunk(index, {}, None, _finish_reason(event.finish_reason))
            if include_usage:
                yield sse.frame({**head, "choices": [], "usage": _usage(results, len(results))})
            yield b"data: [DONE]\n\n"
        except ApplicationError as exc:
            yield sse.frame({"error": {"message": exc.message, "type": "api_error", "param": None, "code": exc.code}})
        finally:
            await events.aclose()

    return sse.event_stream_response(frames(), headers=asked.meter.headers())
