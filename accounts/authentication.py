"""DRF authentication: `Authorization: Bearer <JWT access token | personal API key>`."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from llmsite.error_codes import ErrorCode


class BearerAuthentication(authentication.BaseAuthentication):
    """Accept a JWT access token or an API key; request.auth is the AccessToken or the ApiKey."""

    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        parts = header.split()
        if not parts or parts[0].lower() != "bearer":
            return None  # not ours: another scheme, or no credentials at all
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "The Authorization header must be 'Bearer <token>'.", code=ErrorCode.BAD_AUTHORIZATION_HEADER
            )
        # Imported here: DRF imports this module while rest_framework.views is half-loaded, and
        # services needs rest_framework.views (through llmsite.errors).
        from accounts import services

        try:
            return services.bearer_token_authenticate(parts[1])
        except services.BearerTokenInvalid as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from exc

    def authenticate_header(self, request: Request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'
