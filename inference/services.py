"""Inference use cases: one function each, called by every entry point (REST, SSE, WebSocket, CLI).

- `complete(...)`: validate, look up the response cache, call the active provider, record usage.
- `complete_stream(...)`: the same, streaming text deltas.
- `provider_activate(...)`: switch what the site serves (admin, reload_model, the API).
- `cache_stats()`, `cache_clear()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from inference import cache
from inference.engine import Lease, get_engine
from inference.grounding import Source, ground
from inference.models import InferenceRecord, ProviderConfig
from inference.providers.base import (
    Completion,
    GenerationRequest,
    Message,
    PromptTooLong,
    ProviderError,
    ProviderUnavailable,
    StreamEnd,
    TextDelta,
    Usage,
)
from inference.providers.remote import UpstreamError
from inference.registry import ProviderSpec, check_device, check_spec
from llmsite.errors import ApplicationError, ServiceUnavailable


@dataclass(frozen=True)
class CompletionResult:
    """What a client gets back; `as_dict()` is the predict response body (API.md)."""

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
        return body


def _error_for(exc: ProviderError, request: GenerationRequest) -> ApplicationError:
    """The one mapping from provider errors to HTTP-facing errors."""
    if isinstance(exc, PromptTooLong):
        field = "prompt" if request.prompt is not None else "messages"
        return ApplicationError(exc.message, code="prompt_too_long", field=field)
    if isinstance(exc, ProviderUnavailable):
        return ServiceUnavailable(exc.message)
    if isinstance(exc, UpstreamError):  # a remote API failed: it says which status fits (502, 503, 504, 400)
        return ApplicationError(exc.message, code=exc.code, status=exc.status)
    if exc.permanent:
        return ApplicationError(exc.message, code="provider_error", status=502)
    return ServiceUnavailable(exc.message, code="provider_busy")


def _build_request(
    lease: Lease,
    *,
    prompt: str | None,
    messages: Sequence[dict[str, str] | Message] | None,
    max_new_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    stop: Sequence[str] | None,
    seed: int | None,
    user: Any = None,
    collection: str | None = None,
    top_k: int | None = None,
) -> tuple[GenerationRequest, tuple[Source, ...] | None]:
    defaults = lease.spec.params  # the active ProviderConfig's default parameters
    converted = None
    if messages is not None:
        converted = tuple(m if isinstance(m, Message) else Message(m["role"], m["content"]) for m in messages)
    if (prompt is None) == (converted is None):
        raise ApplicationError("give exactly one of prompt or messages", field="prompt")
    chars = len(prompt or "") + sum(len(m.content) for m in converted or ())
    if chars > settings.LLM_MAX_PROMPT_CHARS:
        raise ApplicationError(
            f"the input has {chars} characters; the limit is {settings.LLM_MAX_PROMPT_CHARS}",
            code="prompt_too_long",
            field="prompt" if prompt is not None else "messages",
        )
    sources = None
    if collection is not None:
        converted, sources = ground(user=user, collection=collection, top_k=top_k, prompt=prompt, messages=converted)
        prompt = None
    elif top_k is not None:
        raise ApplicationError("top_k needs a collection to retrieve from", field="top_k")
    request = GenerationRequest(
        prompt=prompt,
        messages=converted,
        max_new_tokens=min(
            max_new_tokens or int(defaults.get("max_new_tokens", settings.LLM_DEFAULT_MAX_NEW_TOKENS)),
            settings.LLM_MAX_NEW_TOKENS,
        ),
        temperature=float(temperature if temperature is not None else defaults.get("temperature", 0.0)),
        top_p=float(top_p if top_p is not None else defaults.get("top_p", 1.0)),
        stop=tuple(stop or ()),
        seed=seed,
    )
    return request, sources


@dataclass
class _Call:
    """One request on its way: the lease, the request, and its cache key (None: not cacheable)."""

    lease: Lease
    request: GenerationRequest
    key: str | None
    started: float
    request_id: uuid.UUID
    sources: tuple[Source, ...] | None = None
    # With a conversation: the row, and the new turns as the client sent them (stored after the answer).
    conversation: Any = None
    new_turns: dict[str, Any] | None = None


def _begin(*, started: float, conversation: Any = None, **fields: Any) -> tuple[_Call, dict[str, Any] | None]:
    thread, new_turns = None, None
    if conversation is not None:
        from inference import conversations

        thread = conversations.conversation_get(user=fields["user"], conversation_id=conversation)
        new_turns = {"prompt": fields["prompt"], "messages": fields["messages"]}
        fields["messages"] = conversations.conversation_input(conversation=thread, **new_turns)
        fields["prompt"] = None
    engine = get_engine()
    engine.sync_with_config()
    lease = engine.lease()
    try:
        request, sources = _build_request(lease, **fields)
        provider = lease.provider
        key = None
        hit = None
        if request.deterministic:
            try:
                rendered = provider.render(request)
            except ProviderError as exc:
                raise _error_for(exc, request) from exc
            key = cache.response_key(
                provider=provider.name,
                model=provider.model,
                identity=provider.identity,
                rendered=rendered,
                params=request.sampling_params(),
            )
            hit = cache.get(key)
    except BaseException:
        lease.release()
        raise
    return _Call(lease, request, key, started, uuid.uuid4(), sources, thread, new_turns), hit


def _remember(call: _Call, result: CompletionResult) -> CompletionResult:
    """Append the exchange to the call's conversation (if any); the result then names both."""
    if call.conversation is None:
        return result
    from inference import conversations

    answer = conversations.record_exchange(conversation=call.conversation, result=result, **call.new_turns)
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
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _result(call: _Call, text: str, usage: Usage, *, cached: bool, ttft_ms: float | None, reason: str):
    latency_ms = _ms(time.perf_counter() - call.started)
    return CompletionResult(
        id=f"cmpl-{call.request_id.hex}",
        text=text,
        provider=call.lease.provider.name,
        model=call.lease.provider.model,
        usage=usage,
        cached=cached,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms if not cached else latency_ms,
        finish_reason=reason,
        sources=call.sources,
    )


def _from_cache(hit: dict[str, Any]) -> tuple[str, Usage, str]:
    return hit["text"], Usage(**hit["usage"]), hit["finish_reason"]


def _answer_from_cache(call: _Call, hit: dict[str, Any], *, user: Any, source: str) -> CompletionResult:
    """The cached answer as this request's result: recorded, and appended to its conversation."""
    text, usage, reason = _from_cache(hit)
    result = _result(call, text, usage, cached=True, ttft_ms=None, reason=reason)
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


def _store(call: _Call, completion: Completion) -> None:
    if call.key is not None and completion.finish_reason != "cancelled":
        cache.put(
            call.key,
            {
                "text": completion.text,
                "usage": {
                    "prompt_tokens": completion.usage.prompt_tokens,
                    "completion_tokens": completion.usage.completion_tokens,
                },
                "finish_reason": completion.finish_reason,
            },
        )


def complete(
    *,
    user: Any = None,
    prompt: str | None = None,
    messages: Sequence[dict[str, str] | Message] | None = None,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: Sequence[str] | None = None,
    seed: int | None = None,
    collection: str | None = None,
    top_k: int | None = None,
    conversation: int | None = None,
    source: str = "api",
) -> CompletionResult:
    """One completion on the active provider, from the response cache when deterministic and seen before.

    Unset parameters take the active ProviderConfig's defaults, then settings. Raises
    ApplicationError (400 bad input or prompt too long, 502 provider failure) or
    ServiceUnavailable (503: no model loaded, with the reason). Blocking: async callers use
    `complete_stream` or wrap this in `sync_to_async`. Writes one InferenceRecord.
    """
    started = time.perf_counter()
    call, hit = _begin(
        started=started,
        prompt=prompt,
        messages=messages,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=stop,
        seed=seed,
        user=user,
        collection=collection,
        top_k=top_k,
        conversation=conversation,
    )
    with call.lease:
        if hit is not None:
            return _answer_from_cache(call, hit, user=user, source=source)
        try:
            completion = call.lease.provider.generate(call.request)
        except ProviderError as exc:
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
            raise _error_for(exc, call.request) from exc
        _store(call, completion)
        ttft_ms = _ms(completion.ttft) if completion.ttft is not None else None
        result = _result(
            call, completion.text, completion.usage, cached=False, ttft_ms=ttft_ms, reason=completion.finish_reason
        )
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


async def complete_stream(
    *,
    user: Any = None,
    prompt: str | None = None,
    messages: Sequence[dict[str, str] | Message] | None = None,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: Sequence[str] | None = None,
    seed: int | None = None,
    collection: str | None = None,
    top_k: int | None = None,
    conversation: int | None = None,
    source: str = "sse",
) -> AsyncIterator[TextDelta | CompletionResult]:
    """`complete`, streaming: TextDelta events as tokens are produced, then one CompletionResult.

    Errors before the first delta raise (so callers can answer with a real HTTP status).
    Closing the iterator early cancels the generation within one token and records the
    request as cancelled with the tokens produced so far. A cached answer arrives as one delta.
    """
    started = time.perf_counter()
    call, hit = await sync_to_async(_begin)(
        started=started,
        prompt=prompt,
        messages=messages,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=stop,
        seed=seed,
        user=user,
        collection=collection,
        top_k=top_k,
        conversation=conversation,
    )
    record = sync_to_async(_record)
    with call.lease:
        if hit is not None:
            result = await sync_to_async(_answer_from_cache)(call, hit, user=user, source=source)
            if result.text:
                yield TextDelta(result.text)
            yield result
            return
        parts: list[str] = []
        first: float | None = None
        finished = False
        try:
            # aclosing: a consumer that leaves closes the provider's stream (and its HTTP response) at once.
            async with contextlib.aclosing(call.lease.provider.stream(call.request)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        if first is None:
                            first = time.perf_counter()
                        parts.append(event.text)
                        yield event
                    elif isinstance(event, StreamEnd):
                        finished = True
                        completion = Completion(
                            event.text or "".join(parts), event.usage, event.finish_reason, event.ttft
                        )
                        await sync_to_async(_store)(call, completion)
                        ttft_ms = _ms(first - started) if first is not None else None
                        result = _result(
                            call,
                            completion.text,
                            completion.usage,
                            cached=False,
                            ttft_ms=ttft_ms,
                            reason=completion.finish_reason,
                        )
                        await record(
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
                        yield await sync_to_async(_remember)(call, result)
                        return
        except ProviderError as exc:
            finished = True
            await record(
                call,
                user=user,
                source=source,
                usage=Usage(0, len(parts)),  # what streamed before the failure was produced (and billed upstream)
                cached=False,
                latency_ms=_ms(time.perf_counter() - started),
                ttft_ms=None,
                status=InferenceRecord.Status.ERROR,
                error=exc.message,
            )
            raise _error_for(exc, call.request) from exc
        finally:
            if not finished:  # the consumer left early (closed or cancelled)
                produced = len(parts)  # deltas are at least tokens' worth; the provider counted exactly
                ttft_ms = _ms(first - started) if first is not None else None
                await _shielded(
                    record(
                        call,
                        user=user,
                        source=source,
                        usage=Usage(0, produced),
                        cached=False,
                        latency_ms=_ms(time.perf_counter() - started),
                        ttft_ms=ttft_ms,
                        status=InferenceRecord.Status.CANCELLED,
                        finish_reason="cancelled",
                    )
                )
                if call.conversation is not None and parts:  # a stopped answer stays in the thread as far as it got
                    partial = _result(
                        call, "".join(parts), Usage(0, produced), cached=False, ttft_ms=ttft_ms, reason="cancelled"
                    )
                    await _shielded(sync_to_async(_remember)(call, partial))


async def _shielded(awaitable: Any) -> None:
    """Finish writing even when the task that awaits it is being cancelled."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(asyncio.ensure_future(awaitable))


def check_model_served(model: str) -> str:
    """The active model's id when `model` names it; else why not: 404 unknown, 400 listed but not active."""
    from inference import selectors

    _provider, active = selectors.active_model()
    if model in (active, active.rstrip("/").rsplit("/", 1)[-1]):
        return active
    if any(row["id"] == model for row in selectors.openai_models()):
        raise ApplicationError(
            f"The model `{model}` is available but not the one this server serves now (`{active}`); "
            "staff can switch with POST /api/v1/providers/active",
            code="model_not_active",
            field="model",
        )
    raise ApplicationError(f"The model `{model}` does not exist", code="model_not_found", status=404, field="model")


# --- provider switching ------------------------------------------------------------------------


def _default_model(provider: str) -> str:
    return {
        "hf": settings.LLM_MODEL,
        "anthropic": settings.ANTHROPIC_MODEL,
        "openai": settings.OPENAI_MODEL,
    }.get(provider, "")


def _unavailable(exc: ProviderUnavailable) -> ApplicationError:
    return ApplicationError(exc.message, code="unavailable", field="provider")


def provider_activate(
    *,
    provider: str,
    model: str | None = None,
    device: str | None = None,
    parameters: dict[str, Any] | None = None,
    config: ProviderConfig | None = None,
    load_here: bool = True,
) -> ProviderConfig:
    """Make provider/model/device what every server serves, through the active ProviderConfig row.

    With `load_here` (the API and the admin, which run in a server) this process loads the model
    first and swaps atomically; a model that cannot load is an ApplicationError (400) and nothing
    changes. Without it (`reload_model` in its own process) the row is validated and written;
    servers notice the new version within LLM_CONFIG_CHECK_SECONDS and report on the row.
    Saving the same choice again bumps the version, which reloads the weights.
    """
    model = model or (config.model if config else "") or _default_model(provider)
    device = device or (config.device if config else "") or "auto"
    if parameters is None:
        parameters = config.parameters if config else {}
    spec = ProviderSpec(provider, model, device, tuple(sorted(parameters.items())))
    try:
        check_spec(spec)
        check_device(device)
    except ProviderUnavailable as exc:
        raise _unavailable(exc) from exc

    def commit() -> ProviderSpec:
        nonlocal config
        with transaction.atomic():
            row = config
            if row is None:
                row = ProviderConfig.objects.filter(provider=provider, model=model, device=device).first()
            if row is None:
                row = ProviderConfig(provider=provider, model=model, device=device)
            others = ProviderConfig.objects.filter(active=True)
            if row.pk:
                others = others.exclude(pk=row.pk)
                latest = ProviderConfig.objects.filter(pk=row.pk).values_list("version", flat=True).first()
                row.version = (latest or row.version) + 1
            others.update(active=False)
            row.provider, row.model, row.device, row.parameters = provider, model, device, parameters
            row.active = True
            row.applied_version, row.state, row.state_detail = None, "", ""
            row.save()
        config = row
        return ProviderSpec(provider, model, device, spec.parameters, ("db", row.pk, row.version))

    if load_here:
        try:
            get_engine().load(spec, commit=commit)
        except ProviderUnavailable as exc:
            raise _unavailable(exc) from exc
    else:
        commit()
    assert config is not None
    config.refresh_from_db()
    return config


def cache_stats() -> dict[str, Any]:
    """{hits, misses, hit_rate, entries, max_entries, ttl} of the response cache."""
    return cache.stats()


def cache_clear() -> None:
    """Drop every cached answer and reset the counters."""
    cache.clear()
