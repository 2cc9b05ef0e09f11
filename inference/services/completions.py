"""Completions: one use case for every entry point (REST, SSE, WebSocket, /v1, CLI).

`complete(request)` and `complete_stream(request)` take the one `CompletionRequest`: look up
the response cache, call the active provider, append to a conversation, record usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from conversations import selectors as conversation_selectors
from conversations import services as conversation_services
from inference import cache
from inference.engine import Lease, get_engine
from inference.grounding import Source, ground
from inference.models import InferenceRecord
from inference.protocol import CompletionRequest
from inference.providers.base import (
    Completion,
    GenerationRequest,
    InvalidParameter,
    PromptTooLong,
    Provider,
    ProviderError,
    ProviderUnavailable,
    StreamEnd,
    TextDelta,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    Usage,
    as_messages,
)
from inference.providers.remote import UpstreamError
from inference.providers.tools import call_id, unanswered_calls_as_text
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError, ServiceUnavailable
from llmsite.shutdown import GraceExpired, drain, shutting_down_error
from usage import services as metering
from usage.services import Meter, Reservation


@dataclass(frozen=True)
class CompletionResult:
    """What a client gets back; `as_dict()` is the predict response body (docs/api.md)."""

    id: str
    text: str
    provider: str
    model: str
    usage: Usage
    cached: bool
    latency_ms: float
    ttft_ms: float | None
    finish_reason: str
    sources: tuple[Source, ...] | None = None  # set when the answer was grounded in a collection
    conversation: int | None = None  # set when the exchange was appended to a conversation
    message: int | None = None  # the stored answer's id in that conversation (what feedback rates)
    fallback: dict[str, str] | None = None  # {"requested", "reason"} when a fallback model answered
    model_id: str = ""  # the id of the model that answered, as clients name it
    logprobs: tuple[TokenLogprob, ...] | None = None  # when asked: one per generated token
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None = None  # with `echo`: the prompt's tokens (first None)
    tool_calls: tuple[ToolCall, ...] = ()  # the calls the model made (finish_reason "tool_calls")

    def as_dict(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "text": self.text,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage.as_dict(),
            "cached": self.cached,
            "latency_ms": self.latency_ms,
            "finish_reason": self.finish_reason,
        }
        if self.sources is not None:
            body["sources"] = [source.as_dict() for source in self.sources]
        if self.conversation is not None:
            body["conversation"] = self.conversation
            body["message"] = self.message
        if self.fallback is not None:
            body["fallback"] = self.fallback
        if self.tool_calls:
            body["tool_calls"] = [call.as_dict() for call in self.tool_calls]
        return body


def _error_for(exc: ProviderError, request: CompletionRequest) -> ApplicationError:
    """The one mapping from provider errors to HTTP-facing errors."""
    if drain.expired():  # the server stopped the answer (or its model) as it shuts down
        return shutting_down_error()
    if isinstance(exc, PromptTooLong):
        return ApplicationError(exc.message, code=ErrorCode.PROMPT_TOO_LONG, field=request.input_field)
    if isinstance(exc, ProviderUnavailable):
        return ServiceUnavailable(exc.message)
    if isinstance(exc, UpstreamError):  # a remote API failed: it says which status fits (502, 503, 504, 400)
        if exc.status == 503:  # pass on how long the upstream asked us to wait
            wait = math.ceil(exc.retry_after) if exc.retry_after is not None else None
            return ServiceUnavailable(exc.message, code=exc.code, retry_after=wait)
        return ApplicationError(exc.message, code=exc.code, status=exc.status, field=exc.field)
    if exc.permanent:
        return ApplicationError(exc.message, code=ErrorCode.PROVIDER_ERROR, status=502)
    return ServiceUnavailable(exc.message, code=ErrorCode.PROVIDER_BUSY)


@dataclass
class _Call:
    """One request on its way: what the client asked, what the provider runs, its cache key (None: not cached)."""

    lease: Lease
    asked: CompletionRequest
    request: GenerationRequest
    key: str | None
    started: float
    request_id: uuid.UUID
    sources: tuple[Source, ...] | None = None
    conversation: Any = None  # the Conversation row the exchange is appended to, if any
    requested: str = ""  # the model the client (or its conversation) named; '' for the default
    fallback_reason: str = ""  # why the models before this one in the fallback chain did not answer
    last_try: bool = True  # False while a fallback would follow a failure: the failure is then not recorded
    reservation: Reservation | None = None  # what the request holds on its payer's limits until it is recorded

    @property
    def id(self) -> str:
        """The completion's id: the usage record, the response and every stream frame carry it."""
        return completion_id(self.request_id)


def completion_id(request_id: uuid.UUID) -> str:
    return f"cmpl-{request_id.hex}"


@dataclass(frozen=True)
class _Plan:
    """What every try of one request shares: its conversation, history, and the models to try in order."""

    thread: Any
    messages: list[dict[str, str]] | None
    models: tuple[str | None, ...]  # None: the default model
    requested: str


def _plan(asked: CompletionRequest, *, user: Any, meter: Meter) -> _Plan:
    """The conversation (404 if not the user's), its history, and the models to try: the asked one, then fallbacks.

    Fallbacks the API key may not call are left out.
    """
    thread, messages = None, None
    if asked.conversation is not None:
        thread = conversation_selectors.conversation_get(user=user, conversation_id=asked.conversation)
        messages = unanswered_calls_as_text(
            conversation_selectors.conversation_history(conversation=thread, new_turns=asked.new_turns())
        )
    model = asked.model or (thread.model if thread is not None and thread.model else None)
    engine = get_engine()
    engine.sync_with_config()
    key = model or engine.default_model_id()
    fallbacks = tuple(m for m in settings.LLM_FALLBACKS.get(key, ()) if m != key and meter.allows_model(m))
    return _Plan(thread, messages, (model, *fallbacks), model or "")


def _begin(
    asked: CompletionRequest,
    plan: _Plan,
    model: str | None,
    *,
    started: float,
    request_id: uuid.UUID | None,
    tried: list[str],
    user: Any,
    meter: Meter,
):
    """Resolve the request (history, passages, defaults) on `model`'s leased provider, look up the cache, and
    reserve the request's maximum usage on its payer's limits (QuotaExceeded: 429)."""
    thread, messages = plan.thread, plan.messages
    lease = get_engine().lease(model, keep_alive=asked.keep_alive)
    try:
        meter.check_model(lease.model_id)
        sources = None
        if asked.collection is not None:
            messages, sources = ground(
                user=user,
                collection=asked.collection,
                top_k=asked.top_k,
                mode=asked.retrieval_mode,
                prompt=asked.prompt if messages is None else None,
                messages=as_messages(messages if messages is not None else asked.messages),
            )
        try:
            request = asked.generation_request(messages=messages, model_defaults=lease.spec.params)
        except InvalidParameter as exc:  # the model's defaults are out of bounds: staff must fix them
            raise ServiceUnavailable(f"the active model's default parameters are invalid: {exc.message}") from exc
        provider = lease.provider
        try:
            provider.check_features(request)
        except InvalidParameter as exc:  # what this model cannot do (a schema, tools): refused, never ignored
            raise ApplicationError(exc.message, field=exc.field) from exc
        _check_scoring(asked, provider)
        key = None
        hit = None
        try:
            rendered = provider.render(request)
            prompt_tokens = provider.count_tokens(rendered)
        except ProviderError as exc:
            raise _error_for(exc, asked) from exc
        if request.deterministic:
            key = cache.response_key(
                provider=provider.name,
                model=provider.model,
                identity=provider.identity,
                rendered=rendered,
                params=request.cache_params(),
            )
            hit = cache.get(key)
        if hit is not None:  # the answer is known: hold exactly what it reports, as it is recorded
            reservation = meter.reserve(
                model=lease.model_id,
                prompt_tokens=hit["usage"]["prompt_tokens"],
                max_tokens=hit["usage"]["completion_tokens"],
                cached=True,
                deferred=True,
            )
        else:
            reservation = meter.reserve(
                model=lease.model_id, prompt_tokens=prompt_tokens, max_tokens=request.sampling.max_new_tokens
            )
    except BaseException:
        lease.release()
        raise
    call = _Call(lease, asked, request, key, started, request_id or uuid.uuid4(), sources, thread)
    call.requested = plan.requested
    call.fallback_reason = "; ".join(tried)
    call.reservation = reservation
    return call, hit


def _check_scoring(asked: CompletionRequest, provider: Any) -> None:
    """`echo` needs a provider that scores prompts (local models): otherwise a 400 naming the field."""
    if asked.echo and type(provider).score is Provider.score:
        raise ApplicationError(f"{provider.model} cannot return the prompt's log-probabilities", field="echo")


def _generate_or_score(call: _Call) -> tuple[Completion, tuple[TokenLogprob | None, ...] | None]:
    """The provider's answer, and with `echo` the prompt's scores; `score_only` generates nothing."""
    provider, asked = call.lease.provider, call.asked
    scores = provider.score(call.request) if asked.echo else None
    if asked.score_only:
        prompt_tokens = len(scores) if scores is not None else 0
        return Completion(
            "", Usage(prompt_tokens, 0), "length", logprobs=() if asked.logprobs is not None else None
        ), scores
    return provider.generate(call.request), scores


def _remember(call: _Call, result: CompletionResult) -> CompletionResult:
    """Append the exchange to the call's conversation (if any); the result then names both."""
    if call.conversation is None:
        return result
    answer = conversation_services.exchange_append(
        conversation=call.conversation,
        chosen_model=call.asked.model,
        turns=call.asked.new_turns(),
        answer=result.text,
        provider=result.provider,
        model=result.model,
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        finish_reason=result.finish_reason or "",
        completion_id=result.id,
        tool_calls=[call.as_dict() for call in result.tool_calls],
        sources=[source.as_dict() for source in result.sources or ()],
    )
    return dataclasses.replace(result, conversation=call.conversation.pk, message=answer.pk)


def _record(
    call: _Call,
    *,
    user: Any,
    source: str,
    usage: Usage,
    cached: bool,
    latency_ms: float,
    ttft_ms: float | None,
    status: str,
    finish_reason: str = "",
    error: str = "",
) -> None:
    # The record and the usage go in one transaction: one turn at the database per request (a
    # cached answer's limits are checked here too; a refusal writes nothing).
    with metering.writing():
        if call.reservation is not None:
            call.reservation.apply()
        InferenceRecord.objects.create(
            request_id=call.request_id,
            user=user if getattr(user, "is_authenticated", False) else None,
            source=source,
            provider=call.lease.provider.name,
            model=call.lease.provider.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            cached=cached,
            status=status,
            finish_reason=finish_reason,
            error=error[:5000],
            requested_model=call.requested if call.fallback_reason else "",
            fallback_reason=call.fallback_reason[:5000],
        )
        if call.reservation is not None:
            call.reservation.settle(
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, status=status
            )


def _release(call: _Call) -> None:
    """The try failed before producing anything and is not recorded (a fallback follows): nothing is charged."""
    if call.reservation is not None:
        call.reservation.release()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _result(
    call: _Call,
    text: str,
    usage: Usage,
    *,
    cached: bool,
    ttft_ms: float | None,
    reason: str,
    tool_calls: tuple[ToolCall, ...] = (),
):
    latency_ms = _ms(time.perf_counter() - call.started)
    return CompletionResult(
        id=call.id,
        text=text,
        provider=call.lease.provider.name,
        model=call.lease.provider.model,
        usage=usage,
        cached=cached,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms if not cached else latency_ms,
        finish_reason=reason,
        sources=call.sources,
        fallback={"requested": call.requested, "reason": call.fallback_reason} if call.fallback_reason else None,
        model_id=call.lease.model_id,
        tool_calls=tool_calls,
    )


def _from_cache(hit: dict[str, Any]) -> tuple[str, Usage, str]:
    return hit["text"], Usage(**hit["usage"]), hit["finish_reason"]


def _logprobs_from_cache(hit: dict[str, Any]) -> dict[str, Any]:
    """The cached answer's log-probabilities, as CompletionResult fields (none when it was asked without)."""
    from inference.runners.wire import logprobs_from_list, scores_from_list

    prompt = hit.get("prompt_logprobs")
    return {
        "logprobs": logprobs_from_list(hit.get("logprobs")),
        "prompt_logprobs": scores_from_list(prompt) if prompt is not None else None,
    }


def _cached_tool_calls(hit: dict[str, Any]) -> tuple[ToolCall, ...]:
    """A cached answer's calls, with new ids: every answer's calls are its own."""
    return tuple(dataclasses.replace(ToolCall.from_dict(values), id=call_id()) for values in hit.get("tool_calls", ()))


def _answer_from_cache(call: _Call, hit: dict[str, Any], *, user: Any, source: str) -> CompletionResult:
    """The cached answer as this request's result: recorded, and appended to its conversation."""
    text, usage, reason = _from_cache(hit)
    result = _result(call, text, usage, cached=True, ttft_ms=None, reason=reason, tool_calls=_cached_tool_calls(hit))
    result = dataclasses.replace(result, **_logprobs_from_cache(hit))
    _record(
        call,
        user=user,
        source=source,
        usage=usage,
        cached=True,
        latency_ms=result.latency_ms,
        ttft_ms=result.ttft_ms,
        status=InferenceRecord.Status.OK,
        finish_reason=reason,
    )
    return _remember(call, result)


def _store(call: _Call, completion: Completion, scores: tuple[TokenLogprob | None, ...] | None = None) -> None:
    from inference.runners.wire import logprobs_to_list, scores_to_list

    if call.key is not None and completion.finish_reason != "cancelled":
        entry = {
            "text": completion.text,
            "usage": {
                "prompt_tokens": completion.usage.prompt_tokens,
                "completion_tokens": completion.usage.completion_tokens,
            },
            "finish_reason": completion.finish_reason,
        }
        if completion.tool_calls:
            entry["tool_calls"] = [c.as_dict() for c in completion.tool_calls]
        if completion.logprobs is not None:
            entry["logprobs"] = logprobs_to_list(completion.logprobs)
        if scores is not None:
            entry["prompt_logprobs"] = scores_to_list(scores)
        cache.put(call.key, entry)


def _finish(
    call: _Call,
    completion: Completion,
    *,
    user: Any,
    source: str,
    ttft_ms: float | None,
    scores: tuple[TokenLogprob | None, ...] | None = None,
):
    """A generated answer's end, however it was asked for: cached, recorded, appended to its conversation."""
    _store(call, completion, scores)
    result = _result(
        call,
        completion.text,
        completion.usage,
        cached=False,
        ttft_ms=ttft_ms,
        reason=completion.finish_reason,
        tool_calls=completion.tool_calls,
    )
    result = dataclasses.replace(result, logprobs=completion.logprobs, prompt_logprobs=scores)
    _record(
        call,
        user=user,
        source=source,
        usage=completion.usage,
        cached=False,
        latency_ms=result.latency_ms,
        ttft_ms=ttft_ms,
        status=InferenceRecord.Status.OK,
        finish_reason=completion.finish_reason,
    )
    return _remember(call, result)


def _falls_back(exc: ApplicationError, call: _Call | None = None) -> bool:
    """Whether the next model of the chain should try: the model is unavailable, overloaded or failed (5xx).

    Never while the server shuts down: no model of this server may start an answer then.
    """
    if exc.code == ErrorCode.SHUTTING_DOWN:
        return False
    return exc.status >= 500 and (call is None or not call.last_try)


def _model_label(model: str | None) -> str:
    return model or "the default model"


def complete(
    request: CompletionRequest,
    *,
    user: Any = None,
    source: str = "api",
    request_id: uuid.UUID | None = None,
    meter: Meter | None = None,
) -> CompletionResult:
    """One completion on the model the request names (else its conversation's, else the default).

    From the response cache when deterministic and seen before. When that model is unavailable,
    overloaded or fails, its fallbacks (LLM_FALLBACKS) try in order; the result and the record
    say which answered and why. Unset sampling values take the model's ProviderConfig defaults,
    then settings. Raises ApplicationError (400 bad input or prompt too long, 404 unknown model,
    conversation or collection, 502 provider failure) or ServiceUnavailable (503, with the reason).
    Blocking: async callers use `complete_stream`. Writes one InferenceRecord whose id is
    `request_id` (a new one when not given); the result's `id` is `cmpl-<its hex>`.

    `meter` (default: the user's, without an API key) holds the request's maximum on its payer's
    limits before the work (QuotaExceeded: 429) and settles the real usage into the ledger; after
    the call its `headers()` are the x-ratelimit-* headers. An API key's model list is enforced (403).
    """
    started = time.perf_counter()
    meter = meter if meter is not None else Meter(user=user)
    plan = _plan(request, user=user, meter=meter)
    tried: list[str] = []
    for index, model in enumerate(plan.models):
        last = index == len(plan.models) - 1
        try:
            return _complete_on(
                request,
                plan,
                model,
                user=user,
                source=source,
                request_id=request_id,
                started=started,
                tried=tried,
                last=last,
                meter=meter,
            )
        except ApplicationError as exc:
            if last or not _falls_back(exc):
                raise
            tried.append(f"{_model_label(model)}: {exc.message}")
    raise AssertionError("the model chain is never empty")


def _complete_on(
    request: CompletionRequest,
    plan: _Plan,
    model: str | None,
    *,
    user: Any,
    source: str,
    request_id: uuid.UUID | None,
    started: float,
    tried: list[str],
    last: bool,
    meter: Meter,
) -> CompletionResult:
    call, hit = _begin(
        request, plan, model, started=started, request_id=request_id, tried=tried, user=user, meter=meter
    )
    call.last_try = last
    with call.lease, _released_unless_recorded(call):
        if hit is not None:
            return _answer_from_cache(call, hit, user=user, source=source)
        try:
            completion, scores = _generate_or_score(call)
        except ProviderError as exc:
            error = _error_for(exc, request)
            if not _falls_back(error, call):
                _record(
                    call,
                    user=user,
                    source=source,
                    usage=Usage(0, 0),
                    cached=False,
                    latency_ms=_ms(time.perf_counter() - started),
                    ttft_ms=None,
                    status=InferenceRecord.Status.ERROR,
                    error=exc.message,
                )
            raise error from exc
        ttft_ms = _ms(completion.ttft) if completion.ttft is not None else None
        return _finish(call, completion, user=user, source=source, ttft_ms=ttft_ms, scores=scores)


@contextlib.contextmanager
def _released_unless_recorded(call: _Call):
    """Whatever ends the try without a record (a fallback follows, a bug) gives its reservation back."""
    try:
        yield
    finally:
        _release(call)  # a no-op once the record settled it


class _TryNext(Exception):
    """A stream's model failed before its first token and a fallback follows."""

    def __init__(self, error: ApplicationError):
        super().__init__(error.message)
        self.error = error


async def complete_stream(
    request: CompletionRequest,
    *,
    user: Any = None,
    source: str = "sse",
    request_id: uuid.UUID | None = None,
    on_fallback: Callable[[str], None] | None = None,
    meter: Meter | None = None,
) -> AsyncIterator[TextDelta | ToolCallDelta | CompletionResult]:
    """`complete`, streaming: TextDelta (and ToolCallDelta) events as tokens are produced, then one CompletionResult.

    Errors before the first delta raise (so callers can answer with a real HTTP status); until
    then a failing model hands over to its fallbacks, as in `complete`. Closing the iterator early
    cancels the generation within one token and records the request as cancelled with the tokens
    produced so far. A cached answer arrives as one delta. A caller that must name the completion
    before it ends (a stream's frames) passes `request_id`; one that must name the model before the
    first event passes `on_fallback`, called with the answering model's id before the first event
    when a fallback answers. `meter` as in `complete`: its headers are set once the first event is.
    """
    started = time.perf_counter()
    meter = meter if meter is not None else Meter(user=user)
    with drain.tracking():  # a server shutting down waits for this answer (up to its grace period)
        plan = await sync_to_async(_plan)(request, user=user, meter=meter)
        tried: list[str] = []
        for index, model in enumerate(plan.models):
            last = index == len(plan.models) - 1
            try:
                call, hit = await sync_to_async(_begin)(
                    request, plan, model, started=started, request_id=request_id, tried=tried, user=user, meter=meter
                )
            except ApplicationError as exc:
                if last or not _falls_back(exc):
                    raise
                tried.append(f"{_model_label(model)}: {exc.message}")
                continue
            call.last_try = last
            try:
                async with contextlib.aclosing(_stream_on(call, hit, request, user=user, source=source)) as events:
                    announced = False
                    async for event in events:
                        if not announced and call.fallback_reason and on_fallback is not None:
                            on_fallback(call.lease.model_id)
                        announced = True
                        yield event
                return
            except _TryNext as failed:
                tried.append(f"{_model_label(model)}: {failed.error.message}")
            finally:
                if call.reservation is not None and not call.reservation.done:
                    await _shielded(sync_to_async(_release)(call))


async def _stream_on(
    call: _Call, hit: dict[str, Any] | None, request: CompletionRequest, *, user: Any, source: str
) -> AsyncIterator[TextDelta | ToolCallDelta | CompletionResult]:
    started = call.started
    record = sync_to_async(_record)
    with call.lease:
        if hit is not None:
            result = await sync_to_async(_answer_from_cache)(call, hit, user=user, source=source)
            if result.text or result.logprobs:
                yield TextDelta(result.text, result.logprobs)
            for index, made in enumerate(result.tool_calls):
                yield ToolCallDelta(index, made.arguments, made.id, made.name)
            yield result
            return
        parts: list[str] = []
        logprobs: list[TokenLogprob] | None = [] if call.request.logprobs is not None else None
        first: float | None = None
        finished = False
        try:
            # aclosing: a consumer that leaves closes the provider's stream (and its HTTP response) at once.
            async with contextlib.aclosing(call.lease.provider.stream(call.request)) as events:
                while (event := await _next_before_shutdown(events)) is not None:
                    if isinstance(event, TextDelta):
                        if first is None:
                            first = time.perf_counter()
                        parts.append(event.text)
                        if logprobs is not None and event.logprobs:
                            logprobs.extend(event.logprobs)
                        yield event
                    elif isinstance(event, ToolCallDelta):
                        if first is None:
                            first = time.perf_counter()
                        parts.append(event.arguments)
                        yield event
                    elif isinstance(event, StreamEnd):
                        finished = True
                        text = event.text if event.text or event.tool_calls else "".join(parts)
                        completion = Completion(
                            text,
                            event.usage,
                            event.finish_reason,
                            event.ttft,
                            logprobs=tuple(logprobs) if logprobs is not None else None,
                            tool_calls=event.tool_calls,
                        )
                        ttft_ms = _ms(first - started) if first is not None else None
                        yield await sync_to_async(_finish)(call, completion, user=user, source=source, ttft_ms=ttft_ms)
                        return
        except ProviderError as exc:
            finished = True
            error = _error_for(exc, request)
            if not parts and _falls_back(error, call):
                raise _TryNext(error) from exc
            await record(
                call,
                user=user,
                source=source,
                # What streamed before the failure was produced (and billed upstream).
                usage=Usage(call.reservation.prompt_tokens if parts and call.reservation else 0, len(parts)),
                cached=False,
                latency_ms=_ms(time.perf_counter() - started),
                ttft_ms=None,
                status=InferenceRecord.Status.ERROR,
                error=exc.message,
            )
            raise error from exc
        finally:
            if not finished:  # the consumer left early (closed or cancelled)
                produced = len(parts)  # deltas are at least tokens' worth; the provider counted exactly
                # The prompt was read whether or not an answer came: it is part of the usage.
                prompt_tokens = call.reservation.prompt_tokens if call.reservation is not None else 0
                ttft_ms = _ms(first - started) if first is not None else None
                await _shielded(
                    record(
                        call,
                        user=user,
                        source=source,
                        usage=Usage(prompt_tokens, produced),
                        cached=False,
                        latency_ms=_ms(time.perf_counter() - started),
                        ttft_ms=ttft_ms,
                        status=InferenceRecord.Status.CANCELLED,
                        finish_reason="cancelled",
                    )
                )
                if call.conversation is not None and parts:  # a stopped answer stays in the thread as far as it got
                    partial = _result(
                        call,
                        "".join(parts),
                        Usage(prompt_tokens, produced),
                        cached=False,
                        ttft_ms=ttft_ms,
                        reason="cancelled",
                    )
                    await _shielded(sync_to_async(_remember)(call, partial))


async def _next_before_shutdown(events: AsyncIterator[Any]) -> Any:
    """The provider stream's next event (None at its end); once the shutdown grace ends, a ProviderUnavailable.

    One step at a time, so the bound never spans a `yield` to the consumer (llmsite/shutdown.py).
    """
    try:
        async with drain.bounded():
            return await anext(events, None)
    except GraceExpired as exc:
        raise ProviderUnavailable(exc.message, permanent=False) from exc


async def _shielded(awaitable: Any) -> None:
    """Finish writing even when the task that awaits it is being cancelled."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(asyncio.ensure_future(awaitable))
