"""What the remote providers share: pooled httpx clients, retries, SSE streams, upstream errors.

Plain Python, no Django. `RemoteProvider` is the base of `AnthropicProvider` and
`OpenAIProvider`; a subclass says how to build the request body, where to send it and how to
read the stream (`StreamParser`). Everything else lives here, once:

- One pooled `httpx.Client` (for `generate` and model listing, called from worker threads) and
  one `httpx.AsyncClient` (for `stream`, on the event loop) per provider, with explicit
  connect/read timeouts; the read timeout applies to each chunk, so a long stream is fine while
  tokens flow.
- Both `generate` and `stream` ask the upstream for an SSE stream: one parser per provider,
  and a slow answer is bounded by the per-chunk read timeout rather than by a whole-response one.
- Retries with exponential backoff and jitter on connect errors, timeouts, 408, 429 and 5xx,
  honouring `Retry-After` up to `HttpOptions.max_retry_wait` — and never once text has been
  produced, because the client has seen it.
- Every failure becomes an `UpstreamError` carrying the HTTP status our API should answer with
  (401/403 → 502 "rejected the API key", timeouts → 504, 5xx and broken streams → 502, rate
  limits and overload → 503). Messages never contain the API key.
- What comes back is checked against what was asked (`check_answer`): a `json_schema` answer must
  parse and fit its schema, tool call arguments must be JSON objects for tools the request offered,
  asked-for logprobs must come. An upstream that breaks that contract is a 502
  `upstream_bad_response` naming what was wrong, never text the client would trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from inference.providers.base import (
    TOOL_ROLE,
    Completion,
    GenerationRequest,
    InvalidParameter,
    ModelInfo,
    Provider,
    ProviderError,
    ProviderUnavailable,
    StreamEnd,
    StreamEvent,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
)
from llmsite.error_codes import ErrorCode

logger = logging.getLogger(__name__)

# How much of an upstream error message we pass on: enough to act on, not a whole HTML page.
MAX_UPSTREAM_MESSAGE = 500


class UpstreamError(ProviderError):
    """A remote API failed or refused.

    `status` is the HTTP status our API answers with, `code` its error code; `retry_after`
    (seconds) is the upstream's own hint; `field` the request parameter the upstream named as wrong.
    `permanent=False` means the retry loop may try again.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        code: str = "upstream_error",
        permanent: bool = False,
        retry_after: float | None = None,
        field: str | None = None,
    ):
        super().__init__(message, permanent=permanent)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.field = field


@dataclass(frozen=True)
class HttpOptions:
    """How a remote provider talks HTTP: timeouts (seconds), retries and backoff."""

    connect_timeout: float = 5.0
    # Per chunk read, not per response: a stream may run for minutes while tokens keep coming.
    read_timeout: float = 60.0
    # Tries after the first one (0: never retry).
    max_retries: int = 2
    # The first backoff; it doubles per attempt, with jitter so that many clients do not retry in step.
    backoff: float = 0.5
    # No single wait is longer. A Retry-After beyond it fails at once: waiting less would be refused again.
    max_retry_wait: float = 20.0
    max_connections: int = 100

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout, read=self.read_timeout, write=self.read_timeout, pool=self.connect_timeout
        )


def retry_delay(options: HttpOptions, attempt: int, error: UpstreamError) -> float | None:
    """Seconds to wait before trying again after failed attempt number `attempt` (0-based), or None: give up."""
    if error.permanent or attempt >= options.max_retries:
        return None
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= options.max_retry_wait else None
    backoff = min(options.max_retry_wait, options.backoff * 2**attempt)
    return backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """The wait an upstream asks for: `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an HTTP date."""
    with contextlib.suppress(ValueError):
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def check_tool_messages(request: GenerationRequest) -> None:
    """Raise InvalidParameter unless every tool result names the call it answers (both APIs need the id)."""
    for index, message in enumerate(request.messages or ()):
        if message.role == TOOL_ROLE and not message.tool_call_id:
            raise InvalidParameter(f"messages.{index}.tool_call_id", "a tool message must name the call it answers")


def new_call_id() -> str:
    """An id for a tool call an upstream sent without one (some compatible servers do)."""
    return f"call_{uuid.uuid4().hex[:24]}"


class StreamParser(Protocol):
    """Turns one upstream's SSE events into our stream events; one instance per attempt."""

    def feed(self, event: ServerSentEvent) -> list[StreamEvent]:
        """Events for one SSE event; a `StreamEnd` last when `event` is the stream's end marker.

        Raises UpstreamError for in-band errors and malformed data.
        """
        ...

    @property
    def end_marker(self) -> str:
        """What the stream must end with (for the error when it does not)."""
        ...


def parse_json(event: ServerSentEvent, source: str) -> dict[str, Any]:
    """One SSE event's data as a JSON object; anything else is a malformed stream."""
    try:
        data = json.loads(event.data)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UpstreamError(
            f"{source} sent a malformed stream event ({event.event}): {event.data[:200]!r}",
            code=ErrorCode.UPSTREAM_BAD_RESPONSE,
            permanent=True,
        )
    return data


def broken_contract(source: str, what: str) -> UpstreamError:
    """The error for an answer that breaks what the request asked for (a 502: the upstream's fault)."""
    return UpstreamError(f"{source} {what}", code=ErrorCode.UPSTREAM_BAD_RESPONSE, permanent=True)


def _check_fits(source: str, schema: Any, value: Any, what: str) -> None:
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the top level"
        said = f"answered with {what} that does not fit its schema at {where}: {error.message[:200]}"
        raise broken_contract(source, said)


def check_answer(source: str, request: GenerationRequest, text: str, end: StreamEnd, logprobs: int) -> None:
    """Raise an UpstreamError (502 upstream_bad_response) when the answer breaks what `request` asked for.

    `logprobs` is how many token logprobs came with the text. An answer cut short (finish "length") or
    withheld (content_filter, refusal) is passed on as it is: its finish reason already says it is not whole.
    """
    response_format = request.response_format
    if end.finish_reason == "stop" and response_format is not None:
        try:
            value = json.loads(text)
        except ValueError as exc:
            said = f"answered with text that is not JSON, though response_format asked for JSON ({exc}): {text[:200]!r}"
            raise broken_contract(source, said) from exc
        if response_format.type == "json_object" and not isinstance(value, dict):
            said = f"answered with JSON that is not an object, though response_format asked for one: {text[:200]!r}"
            raise broken_contract(source, said)
        if response_format.type == "json_schema":
            _check_fits(source, json.loads(response_format.schema), value, "JSON")
    if end.finish_reason == "tool_calls":
        offered = {tool.name: tool for tool in request.tools}
        for call in end.tool_calls:
            tool = offered.get(call.name)
            if tool is None or request.tool_choice == "none":
                raise broken_contract(source, f"called {call.name!r}, which the request did not let it call")
            named = request.tool_choice.partition(":")[2] if request.tool_choice.startswith("function:") else ""
            if named and call.name != named:
                raise broken_contract(source, f"called {call.name!r}, though the request named {named!r}")
            try:
                arguments = json.loads(call.arguments)
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                raise broken_contract(
                    source, f"called {call.name!r} with arguments that are not a JSON object: {call.arguments[:200]!r}"
                )
            if tool.strict:
                _check_fits(source, json.loads(tool.parameters), arguments, f"arguments for {call.name!r}")
    if request.logprobs is not None and text and not logprobs:
        raise broken_contract(source, "sent no logprobs, though the request asked for them (does it support logprobs?)")


class _Answer:
    """What one attempt's stream produced so far: the text and its token logprobs."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.logprobs: list[TokenLogprob] = []

    def see(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self.parts.append(event.text)
            self.logprobs.extend(event.logprobs or ())

    @property
    def text(self) -> str:
        return "".join(self.parts)


# What remote providers assume a token is worth when they must estimate (their tokenizer is upstream).
CHARS_PER_TOKEN_ESTIMATE = 4


class RemoteProvider(Provider):
    """Base of providers behind an HTTP API; see the module docstring.

    Subclasses set `name`, implement `_stream_path`, `_request_body` and `_new_parser`, and may
    override `_auth_headers`, `_query_params`, `_models_path` and `_model_infos`. They never read
    Django settings: everything comes through the constructor.
    """

    device = "remote"  # what /readyz and the engine status show where a local model names its device
    key_required = True

    def __init__(self, model: str, *, base_url: str, api_key: str = "", http: HttpOptions | None = None):
        super().__init__(model)
        self.base_url = base_url.rstrip("/")
        self.http = http or HttpOptions()
        self._api_key = api_key  # never logged, never in messages: see _redact
        parts = urlsplit(self.base_url)
        # Shown in messages and the cache identity: scheme-less, and without any user:password@.
        self.host = parts.hostname or self.base_url
        if parts.port:
            self.host = f"{self.host}:{parts.port}"
        self._path = parts.path.rstrip("/")
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._async_client: httpx.AsyncClient | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._closing: set[asyncio.Future[Any]] = set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}:{self.model} at {self.host}>"

    # --- tokens: the upstream has the tokenizer and the window --------------------------
    @property
    def context_window(self) -> int | None:
        return None  # unknown here; the upstream refuses a prompt that does not fit (a 400 that says so)

    def count_tokens(self, text: str) -> int:
        """An estimate (about four characters a token for English), never zero for non-empty text."""
        return -(-len(text) // CHARS_PER_TOKEN_ESTIMATE)

    def render(self, request: GenerationRequest) -> str:
        """The input as sent, tool calls and the ids of tool results included (they are part of the cache key)."""
        if request.prompt is not None:
            return request.prompt
        turns = [m.as_dict() if m.tool_calls or m.tool_call_id else [m.role, m.content] for m in request.messages or ()]
        return json.dumps(turns, ensure_ascii=False)

    # --- what a subclass says -------------------------------------------------------------
    def _stream_path(self) -> str:
        raise NotImplementedError

    def _request_body(self, request: GenerationRequest) -> dict[str, Any]:
        raise NotImplementedError

    def _new_parser(self, request: GenerationRequest) -> StreamParser:
        raise NotImplementedError

    def _auth_headers(self) -> dict[str, str]:
        return {}

    def _query_params(self) -> dict[str, str]:
        return {}

    def _models_path(self) -> str | None:
        """Where the upstream lists its models (None: it cannot)."""
        return None

    def _model_infos(self, body: Any) -> list[ModelInfo]:
        raise NotImplementedError

    # --- lifecycle --------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """Who answered, for messages: the provider and the host (never the key)."""
        return f"{self.name} at {self.host}"

    @property
    def identity(self) -> str:
        # The same model name on two servers gives two answers: the cache must tell them apart.
        return f"{self.model}@{self.host}{self._path}"

    @property
    def missing_key(self) -> bool:
        """Whether this upstream needs an API key and none was given."""
        return self.key_required and not self._api_key

    def load(self) -> None:
        """Check the configuration and open the connection pool; no request is made (an upstream that
        is briefly down must not stop the site switching to it)."""
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ProviderUnavailable(f"{self.name}: the base URL must start with http:// or https://")
        if self.missing_key:
            raise ProviderUnavailable(f"{self.name}: no API key is configured")
        if not self.model:
            raise ProviderUnavailable(f"{self.name}: no model is configured")
        self._sync_client()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            async_client, loop = self._async_client, self._async_loop
            self._async_client = self._async_loop = None
        if client is not None:
            client.close()
        if async_client is not None and loop is not None and not loop.is_closed():
            # The async pool belongs to its event loop: close it there, without waiting here
            # (the engine may close a provider from the loop's own thread).
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                task = loop.create_task(async_client.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(async_client.aclose(), loop)

    def _client_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "headers": {**self._auth_headers(), "accept": "text/event-stream"},
            "params": self._query_params(),
            "timeout": self.http.timeout(),
            "limits": httpx.Limits(max_connections=self.http.max_connections, max_keepalive_connections=20),
            "follow_redirects": False,
        }

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._closed:
                raise ProviderUnavailable(f"{self.label}: the provider was closed")
            if self._client is None:
                self._client = httpx.Client(**self._client_options())
            return self._client

    def _loop_client(self) -> httpx.AsyncClient:
        """The async pool of the running event loop (connections cannot move between loops)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise ProviderUnavailable(f"{self.label}: the provider was closed")
            if self._async_client is None or self._async_loop is not loop:
                self._async_client = httpx.AsyncClient(**self._client_options())
                self._async_loop = loop
            return self._async_client

    # --- errors -----------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "[redacted]")
        return text[:MAX_UPSTREAM_MESSAGE]

    def _upstream_detail(self, response: httpx.Response) -> str:
        """The upstream's own error message (both APIs: {"error": {"message": ...}}), or ''."""
        try:
            body = response.json()
        except ValueError:
            return ""  # an HTML error page from a proxy: its status says enough
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            kind, message = error.get("type") or error.get("code") or "", error.get("message") or ""
            return self._redact(f"{kind}: {message}" if kind and message else str(message or kind))
        if isinstance(error, str):
            return self._redact(error)
        return ""

    def _upstream_param(self, response: httpx.Response) -> str | None:
        """The parameter an upstream's 400 names (OpenAI's `error.param`; Anthropic names none), or None."""
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            return None
        param = error.get("param") if isinstance(error, dict) else None
        return self._redact(param) if isinstance(param, str) and param else None

    def error_for_response(self, response: httpx.Response) -> UpstreamError:
        """The UpstreamError for a non-2xx answer (its body already read)."""
        status = response.status_code
        detail = self._upstream_detail(response)
        said = f"{self.label} answered HTTP {status}" + (f": {detail}" if detail else "")
        retry_after = parse_retry_after(response.headers)
        if status in (401, 403):
            # The upstream's own words may quote part of the key (OpenAI does): never pass them on.
            return UpstreamError(
                f"the provider rejected the API key ({self.label} answered HTTP {status}); check the configured key",
                code=ErrorCode.UPSTREAM_AUTH,
                permanent=True,
            )
        if status == 404:
            return UpstreamError(
                f"{said} (is the model {self.model!r} right, and the base URL {self.host}{self._path}?)",
                code=ErrorCode.UPSTREAM_NOT_FOUND,
                permanent=True,
            )
        if status in (400, 413, 422):
            # The upstream refused this request (too long, a parameter out of range): the caller can fix it,
            # told which parameter when the upstream says (requests to OpenAI pass the client's fields through).
            field = self._upstream_param(response)
            return UpstreamError(said, status=400, code=ErrorCode.UPSTREAM_REJECTED, permanent=True, field=field)
        if status == 408:
            return UpstreamError(said, status=504, code=ErrorCode.UPSTREAM_TIMEOUT, retry_after=retry_after)
        if status == 429:
            return UpstreamError(said, status=503, code=ErrorCode.UPSTREAM_RATE_LIMITED, retry_after=retry_after)
        if status in (503, 529):
            return UpstreamError(said, status=503, code=ErrorCode.UPSTREAM_OVERLOADED, retry_after=retry_after)
        if status >= 500:
            return UpstreamError(said, code=ErrorCode.UPSTREAM_ERROR, retry_after=retry_after)
        return UpstreamError(said, code=ErrorCode.UPSTREAM_ERROR, permanent=True)

    def error_for_transport(self, exc: httpx.TransportError) -> UpstreamError:
        """The UpstreamError for a connection that failed, timed out or broke off."""
        reason = self._redact(str(exc) or type(exc).__name__)
        if isinstance(exc, httpx.ConnectTimeout):
            message = f"could not connect to {self.label} within {self.http.connect_timeout:g} s"
            return UpstreamError(message, status=504, code=ErrorCode.UPSTREAM_TIMEOUT)
        if isinstance(exc, httpx.TimeoutException):
            message = f"{self.label} sent nothing for {self.http.read_timeout:g} s"
            return UpstreamError(message, status=504, code=ErrorCode.UPSTREAM_TIMEOUT)
        if isinstance(exc, httpx.ConnectError):
            return UpstreamError(f"could not connect to {self.label}: {reason}", code=ErrorCode.UPSTREAM_UNREACHABLE)
        return UpstreamError(
            f"the connection to {self.label} broke off: {reason}", code=ErrorCode.UPSTREAM_DISCONNECTED
        )

    def in_band_error(self, kind: str, message: str) -> UpstreamError:
        """The UpstreamError for an error the upstream reports inside a stream (`kind`: its error type)."""
        said = f"{self.label} reported {kind or 'an error'}" + (f": {self._redact(message)}" if message else "")
        if kind in ("authentication_error", "permission_error", "invalid_api_key"):
            return UpstreamError(
                f"the provider rejected the API key ({self.label} reported {kind})",
                code=ErrorCode.UPSTREAM_AUTH,
                permanent=True,
            )
        if kind in ("invalid_request_error", "request_too_large"):
            return UpstreamError(said, status=400, code=ErrorCode.UPSTREAM_REJECTED, permanent=True)
        if kind == "not_found_error":
            return UpstreamError(said, code=ErrorCode.UPSTREAM_NOT_FOUND, permanent=True)
        if kind in ("rate_limit_error", "rate_limit_exceeded"):
            return UpstreamError(said, status=503, code=ErrorCode.UPSTREAM_RATE_LIMITED)
        if kind == "overloaded_error":
            return UpstreamError(said, status=503, code=ErrorCode.UPSTREAM_OVERLOADED)
        if kind == "timeout_error":
            return UpstreamError(said, status=504, code=ErrorCode.UPSTREAM_TIMEOUT)
        return UpstreamError(said, code=ErrorCode.UPSTREAM_ERROR)  # api_error, server_error and the unknown

    def _not_a_stream(self, exc: SSEError) -> UpstreamError:
        # An HTML page behind a 200 (a captive proxy, a wrong base URL): an explicit failure, never text.
        return UpstreamError(
            f"{self.label} did not answer with an event stream ({exc})",
            code=ErrorCode.UPSTREAM_BAD_RESPONSE,
            permanent=True,
        )

    def _cut_short(self, parser: StreamParser) -> UpstreamError:
        return UpstreamError(
            f"the stream from {self.label} ended before {parser.end_marker}", code=ErrorCode.UPSTREAM_DISCONNECTED
        )

    def _give_up_or_wait(self, attempt: int, error: UpstreamError, produced: bool) -> float:
        """Seconds to wait before the next attempt; raises `error` when there is none."""
        delay = None if produced else retry_delay(self.http, attempt, error)
        if delay is None:
            raise error
        logger.warning(
            "%s; retrying in %.2f s (attempt %d of %d)",
            error.message,
            delay,
            attempt + 2,
            self.http.max_retries + 1,
        )
        return delay

    # --- streaming, blocking (generate) ----------------------------------------------------
    @contextlib.contextmanager
    def _upstream_failures(self) -> Iterator[None]:
        """Turns what httpx and httpx-sse raise into UpstreamErrors."""
        try:
            yield
        except SSEError as exc:  # before TransportError, which it subclasses
            raise self._not_a_stream(exc) from exc
        except httpx.TransportError as exc:
            raise self.error_for_transport(exc) from exc

    def _stream_once(self, request: GenerationRequest, body: dict[str, Any]) -> Iterator[StreamEvent]:
        attempt = _Attempt(self, request)
        with self._upstream_failures(), self._sync_client().stream("POST", self._stream_path(), json=body) as response:
            if not response.is_success:
                response.read()
                raise self.error_for_response(response)
            for sse in EventSource(response).iter_sse():
                yield from attempt.feed(sse)
        yield attempt.finish()

    def _stream_blocking(self, request: GenerationRequest) -> Iterator[StreamEvent]:
        body = self._request_body(request)
        attempt = 0
        while True:
            produced = False
            try:
                for event in self._stream_once(request, body):
                    produced = produced or isinstance(event, TextDelta | ToolCallDelta)
                    yield event
                return
            except UpstreamError as error:
                delay = self._give_up_or_wait(attempt, error, produced)
            attempt += 1
            time.sleep(delay)

    def generate(self, request: GenerationRequest) -> Completion:
        """Blocking: call it from a worker thread. Raises UpstreamError (or ProviderUnavailable when closed)."""
        started = time.perf_counter()
        first: float | None = None
        answer = _Answer()
        for event in self._stream_blocking(request):
            if isinstance(event, StreamEnd):
                check_answer(self.label, request, answer.text, event, len(answer.logprobs))
                return Completion(
                    answer.text,
                    event.usage,
                    event.finish_reason,
                    first,
                    tool_calls=event.tool_calls,
                    logprobs=tuple(answer.logprobs) if request.logprobs is not None else None,
                )
            if first is None:
                first = time.perf_counter() - started
            answer.see(event)
        raise UpstreamError(f"the stream from {self.label} ended without usage", code=ErrorCode.UPSTREAM_BAD_RESPONSE)

    # --- streaming, async -------------------------------------------------------------------
    async def _astream_once(self, request: GenerationRequest, body: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        attempt = _Attempt(self, request)
        with self._upstream_failures():
            async with self._loop_client().stream("POST", self._stream_path(), json=body) as response:
                if not response.is_success:
                    await response.aread()
                    raise self.error_for_response(response)
                async with contextlib.aclosing(EventSource(response).aiter_sse()) as events:
                    async for sse in events:
                        for event in attempt.feed(sse):
                            yield event
        yield attempt.finish()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """TextDelta (and ToolCallDelta) events as the upstream sends them, then one StreamEnd with the
        upstream's own usage, once the answer passed `check_answer` (else an UpstreamError instead).

        Closing the iterator closes the HTTP response (the upstream stops generating). A failure
        before the first text is retried; after it, it is raised as an UpstreamError.
        """
        body = self._request_body(request)
        started = time.perf_counter()
        first: float | None = None
        attempt = 0
        while True:
            produced = False
            answer = _Answer()
            try:
                async with contextlib.aclosing(self._astream_once(request, body)) as events:
                    async for event in events:
                        if isinstance(event, StreamEnd):
                            check_answer(self.label, request, answer.text, event, len(answer.logprobs))
                            if first is not None:
                                event = replace(event, ttft=first)
                        else:
                            produced = True
                            answer.see(event)
                            if first is None:
                                first = time.perf_counter() - started
                        yield event
                return
            except UpstreamError as error:
                delay = self._give_up_or_wait(attempt, error, produced)
            attempt += 1
            await asyncio.sleep(delay)

    # --- models -----------------------------------------------------------------------------
    def models(self, timeout: float | None = None) -> list[ModelInfo]:
        """The models the upstream offers (one request, no retries), else just the configured one.

        Raises UpstreamError when the upstream cannot be asked or refuses.
        """
        path = self._models_path()
        if path is None:
            return [ModelInfo(self.model, "configured")]
        timeout = timeout if timeout is not None else self.http.connect_timeout
        try:
            response = self._sync_client().get(path, headers={"accept": "application/json"}, timeout=timeout)
        except httpx.TransportError as exc:
            raise self.error_for_transport(exc) from exc
        if not response.is_success:
            raise self.error_for_response(response)
        try:
            return self._model_infos(response.json())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError(
                f"{self.label} answered the model list with something else", code=ErrorCode.UPSTREAM_BAD_RESPONSE
            ) from exc


class _Attempt:
    """One request's stream as it is read: text passes through; the end waits for the end of the body."""

    def __init__(self, provider: RemoteProvider, request: GenerationRequest):
        self.provider = provider
        self.parser = provider._new_parser(request)
        self.end: StreamEnd | None = None

    def feed(self, sse: ServerSentEvent) -> list[StreamEvent]:
        if self.end is not None:
            return []  # after the end marker: read on to the end of the body, so the connection is reused
        events = self.parser.feed(sse)
        if events and isinstance(events[-1], StreamEnd):
            self.end = events.pop()
        return events

    def finish(self) -> StreamEnd:
        """The end event; raises UpstreamError when the stream stopped before its end marker."""
        if self.end is None:
            raise self.provider._cut_short(self.parser)
        return self.end
