"""One error family, one mapping to HTTP.

Every JSON error has the shape `{"error": {"code", "message", "field"?}}`; under `/v1/`
it is OpenAI's shape `{"error": {"message", "type", "param", "code"}}` so OpenAI clients
raise their usual exceptions. No API path ever answers with an HTML error page.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import sync_and_async_middleware
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from llmsite.error_codes import ErrorCode

logger = logging.getLogger(__name__)

# Paths whose clients are programs: they always get JSON errors.
JSON_PATH_PREFIXES = ("/api/", "/v1/", "/healthz", "/readyz", "/metrics")


class ApplicationError(Exception):
    """A failure a client can act on; services raise it, the API layer renders it."""

    status = 400
    code = ErrorCode.INVALID

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        field: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.field = field
        self.details = details or {}  # extra members of the error object (not under /v1/, whose shape is fixed)
        self.headers = headers or {}  # e.g. Retry-After


class ServiceUnavailable(ApplicationError):
    """A 503 that always says when to try again (`Retry-After`): a full queue clears soon, a load takes longer."""

    status = 503
    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        if retry_after is None:
            retry_after = 1 if self.code == ErrorCode.PROVIDER_BUSY else 5
        self.headers.setdefault("Retry-After", str(retry_after))


def error_body(code: str, message: str, *, field: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    error.update(extra)
    return {"error": error}


OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def openai_error_body(status: int, code: str, message: str, *, field: str | None = None) -> dict[str, Any]:
    kind = OPENAI_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": field, "code": code}}


def _first_validation_error(detail: Any, prefix: str = "") -> tuple[str | None, str]:
    """Walk DRF's nested error detail to the first message and the dotted field it belongs to."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = prefix if key == "non_field_errors" else (f"{prefix}.{key}" if prefix else str(key))
            return _first_validation_error(value, name)
    if isinstance(detail, list) and detail:
        for index, value in enumerate(detail):
            if value:
                nested = isinstance(value, (dict, list))
                return _first_validation_error(value, f"{prefix}[{index}]" if nested else prefix)
    return (prefix or None), str(detail)


def _body_for(request: HttpRequest | None, status: int, code: str, message: str, field: str | None = None, **extra):
    if request is not None and request.path.startswith("/v1/"):
        return openai_error_body(status, code, message, field=field)
    return error_body(code, message, field=field, **extra)


def from_validation_error(exc: drf_exceptions.ValidationError) -> ApplicationError:
    """A serializer's ValidationError as an ApplicationError naming the first bad field (for WebSockets)."""
    field, message = _first_validation_error(exc.detail)
    return ApplicationError(message, code=ErrorCode.INVALID, field=field)


def application_error_body(request: HttpRequest | None, exc: ApplicationError) -> dict[str, Any]:
    return _body_for(request, exc.status, exc.code, exc.message, exc.field, **exc.details)


def error_response(request: HttpRequest | None, exc: ApplicationError) -> JsonResponse:
    """An ApplicationError as a JSON response, for views outside DRF (async streaming views)."""
    response = JsonResponse(application_error_body(request, exc), status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: render every known failure in our error shape."""
    request = context.get("request")
    if isinstance(exc, ApplicationError):
        return Response(application_error_body(request, exc), status=exc.status, headers=exc.headers)

    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django logs it and JsonErrorMiddleware renders the 500
    if isinstance(exc, drf_exceptions.ValidationError):
        field, message = _first_validation_error(exc.detail)
        extra = {"details": exc.detail} if not (request and request.path.startswith("/v1/")) else {}
        response.data = _body_for(request, response.status_code, ErrorCode.INVALID, message, field, **extra)
    elif isinstance(exc, drf_exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response.data = _body_for(request, response.status_code, str(code), str(exc.detail))
    return response


_STATUS_CODES = {
    400: (ErrorCode.BAD_REQUEST, "The request could not be understood."),
    403: (ErrorCode.FORBIDDEN, "You do not have permission to do this."),
    404: (ErrorCode.NOT_FOUND, "Nothing is here; see /api/docs/ for the API."),
    405: (ErrorCode.METHOD_NOT_ALLOWED, "This method is not allowed here."),
    413: (ErrorCode.TOO_LARGE, "The request body is too large."),
    500: (ErrorCode.SERVER_ERROR, "The server failed to handle this request; it has been logged."),
}


def _as_json_error(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if response.status_code < 400 or not request.path.startswith(JSON_PATH_PREFIXES):
        return response
    content_type = response.get("Content-Type", "")
    if content_type.startswith(("application/json", "text/event-stream", "text/plain; version=0.0.4")):
        return response
    status = response.status_code
    fallback = ErrorCode.SERVER_ERROR if status >= 500 else ErrorCode.ERROR
    code, message = _STATUS_CODES.get(status, (fallback, response.reason_phrase))
    replacement = JsonResponse(_body_for(request, status, code, message), status=status)
    # Everything but the body's own headers carries over: Retry-After, Allow, WWW-Authenticate, and
    # the security headers the inner middlewares set (X-Frame-Options, Vary, ...).
    for header, value in response.items():
        if header.lower() not in ("content-type", "content-length"):
            replacement[header] = value
    return replacement


@sync_and_async_middleware
def JsonErrorMiddleware(get_response):  # noqa: N802 - named like the class-based middlewares beside it
    """Replace Django's HTML error pages (404, 405, 500, CSRF 403) with JSON on API paths."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return _as_json_error(request, await get_response(request))

    else:

        def middleware(request):
            return _as_json_error(request, get_response(request))

    return middleware
