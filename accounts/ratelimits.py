"""Per-user rate limits on the expensive endpoints and on login attempts (django-ratelimit).

Counters live in the cache named by RATELIMIT_USE_CACHE (the shared `default` cache), keyed on
the user id, or on the client IP for anonymous calls. Rates are read from settings at call time
(`RATELIMIT_FEEDBACK = "60/m"`, ...), so `settings` overrides in tests apply. Exceeding a rate
raises RateLimited: a DRF view answers 429 with `Retry-After`; a plain Django view returns
`exc.as_response(request)`.

    class FeedbackApi(APIView):
        @ratelimit_api(group="feedback")  # rate from settings.RATELIMIT_FEEDBACK
        def post(self, request): ...

    async def stream(request):
        try:
            await acheck_rate_limit(request, "chat", user=user)
        except RateLimited as exc:
            return exc.as_response(request)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from django_ratelimit.core import _get_ip, get_usage
from rest_framework import exceptions as drf_exceptions

from llmsite.error_codes import ErrorCode
from llmsite.errors import error_body, openai_error_body

F = TypeVar("F", bound=Callable[..., Any])


class RateLimited(drf_exceptions.Throttled):
    """Too many requests in the current window; `wait` is the Retry-After in seconds."""

    default_code = ErrorCode.RATE_LIMITED

    def __init__(self, *, group: str, rate: str, wait: int):
        self.group = group
        self.rate = rate
        super().__init__(
            wait=max(1, wait), detail=f"Too many requests ({rate} for {group}).", code=ErrorCode.RATE_LIMITED
        )

    def as_response(self, request: Any) -> JsonResponse:
        """The 429 for views outside DRF, in the error shape of the request's path."""
        message = str(self.detail)
        if request.path.startswith("/v1/"):
            body = openai_error_body(429, "rate_limited", message)
        else:
            body = error_body("rate_limited", message)
        response = JsonResponse(body, status=429)
        response["Retry-After"] = str(self.wait)
        return response


def client_ip(request: Any) -> str:
    """The client address rate limits use (RATELIMIT_IP_META_KEY behind a proxy)."""
    return _get_ip(request)


def rate_limit_identity(request: Any, user: Any = None) -> str:
    """`user:<id>` for an authenticated caller, `ip:<address>` otherwise."""
    if user is None:
        user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{client_ip(request)}"


def _resolve_rate(group: str, rate: str | None, rate_setting: str | None) -> str:
    if rate:
        return rate
    name = rate_setting or f"RATELIMIT_{group.upper().replace('-', '_')}"
    value = getattr(settings, name, None)
    if not value:
        raise ImproperlyConfigured(f"Rate limit group {group!r} needs settings.{name} (like '30/m')")
    return value


def _hit(request: Any, group: str, rate: str, value: str) -> None:
    usage = get_usage(request, group=group, key=lambda _group, _request: value, rate=rate, increment=True)
    if usage is not None and usage["should_limit"]:
        raise RateLimited(group=group, rate=rate, wait=usage["time_left"])


def check_rate_limit(
    request: Any,
    group: str,
    rate: str | None = None,
    *,
    rate_setting: str | None = None,
    user: Any = None,
    key: str | None = None,
) -> None:
    """Count one request in `group`; raise RateLimited once the rate is exceeded.

    The rate is `rate` ("30/m"), else settings.<rate_setting>, else settings.RATELIMIT_<GROUP>.
    The counter is per `key`, else per `user` (given, or request.user), else per client IP.
    Sync: it may read request.user (a database query); async code calls acheck_rate_limit.
    """
    resolved = _resolve_rate(group, rate, rate_setting)
    _hit(request, group, resolved, key or rate_limit_identity(request, user))


async def acheck_rate_limit(
    request: Any,
    group: str,
    rate: str | None = None,
    *,
    rate_setting: str | None = None,
    user: Any = None,
    key: str | None = None,
) -> None:
    """`check_rate_limit` for async views and consumers."""
    await sync_to_async(check_rate_limit)(request, group, rate, rate_setting=rate_setting, user=user, key=key)


def ratelimit_api(group: str, rate: str | None = None, *, rate_setting: str | None = None) -> Callable[[F], F]:
    """Decorate a DRF APIView method (or @api_view function): 429 with Retry-After past the rate."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # APIView methods get (self, request, ...); function views get (request, ...).
            request = args[0] if hasattr(args[0], "META") else args[1]
            check_rate_limit(request, group, rate, rate_setting=rate_setting)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def check_login_rate_limit(request: Any, username: str | None) -> None:
    """Count one login attempt per client IP and per username (RATELIMIT_LOGIN each)."""
    rate = _resolve_rate("login", None, "RATELIMIT_LOGIN")
    _hit(request, "login-ip", rate, f"ip:{client_ip(request)}")
    if username:
        # casefold: "Alice" and "alice" are the same target for a password-guessing attacker.
        _hit(request, "login-username", rate, f"username:{str(username).casefold()}")
