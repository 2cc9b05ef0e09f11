"""Account use cases: registration, personal API keys, bearer-token authentication, logout."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions as drf_exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import API_KEY_PREFIX, API_KEY_SCOPES, MAX_KEY_MODELS, ApiKey
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError

User = get_user_model()

# Writing last_used_at on every request would turn each API call into a database write;
# minute resolution is plenty for "when was this key last used".
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_ACTIVE_KEYS_PER_USER = 100


class BearerTokenInvalid(Exception):
    """The bearer token is not a valid access token or API key; `message` says why, for the 401."""

    def __init__(self, message: str, code: str = ErrorCode.TOKEN_NOT_VALID):
        super().__init__(message)
        self.message = message
        self.code = code


# --- Registration ------------------------------------------------------------------------------


@transaction.atomic
def user_register(*, username: str, password: str, email: str = "") -> AbstractBaseUser:
    """Create an active, non-staff user; ApplicationError (400) for a taken username or a weak password."""
    username = User.normalize_username(username)
    if User.objects.filter(username__iexact=username).exists():
        raise ApplicationError(
            f"The username {username!r} is already taken; choose another.",
            code=ErrorCode.USERNAME_TAKEN,
            field="username",
        )
    candidate = User(username=username, email=email)
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        raise ApplicationError(" ".join(exc.messages), code=ErrorCode.WEAK_PASSWORD, field="password") from exc
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, email=email, password=password)
    except IntegrityError as exc:  # a concurrent registration won the race
        raise ApplicationError(
            f"The username {username!r} is already taken; choose another.",
            code=ErrorCode.USERNAME_TAKEN,
            field="username",
        ) from exc


# --- Personal API keys -------------------------------------------------------------------------


def _hash_key(key: str) -> str:
    # A plain sha256 is enough here (unlike passwords): the secret carries 256 random bits, so
    # guessing is hopeless even at billions of hashes per second, and a slow KDF would add its
    # cost to every API request.
    return hashlib.sha256(key.encode()).hexdigest()


def checked_scopes(scopes: list[str] | None) -> list[str]:
    if scopes is None:
        return list(API_KEY_SCOPES)
    unknown = [scope for scope in scopes if scope not in API_KEY_SCOPES]
    if unknown:
        raise ApplicationError(
            f"Unknown scope {unknown[0]!r}: a key may have {', '.join(API_KEY_SCOPES)}"
            " (staff operations always need a login, never a key).",
            field="scopes",
        )
    if not scopes:
        raise ApplicationError("A key needs at least one scope.", field="scopes")
    return [scope for scope in API_KEY_SCOPES if scope in scopes]  # canonical order, no repeats


def checked_models(models: list[str] | None) -> list[str]:
    models = list(dict.fromkeys(models or ()))
    if len(models) > MAX_KEY_MODELS:
        raise ApplicationError(f"A key may name at most {MAX_KEY_MODELS} models.", field="models")
    for model in models:
        if not model.strip() or len(model) > 500:
            raise ApplicationError("Model ids are 1 to 500 characters (see GET /api/v1/models).", field="models")
    return models


@transaction.atomic
def api_key_create(
    *,
    user: AbstractBaseUser,
    name: str = "",
    expires_at: datetime | None = None,
    scopes: list[str] | None = None,
    models: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never retrievable again.

    `scopes` (default: all of chat, embeddings, metrics) and `models` (default: any) bound what it may call.
    """
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("expires_at must be in the future.", field="expires_at")
    scopes = checked_scopes(scopes)
    models = checked_models(models)
    if ApiKey.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_ACTIVE_KEYS_PER_USER:
        raise ApplicationError(
            f"You already have {MAX_ACTIVE_KEYS_PER_USER} active API keys; revoke some first.",
            code=ErrorCode.TOO_MANY_KEYS,
        )
    prefix = secrets.token_hex(6)  # hex: never contains the "_" separator
    key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        secret_hash=_hash_key(key),
        expires_at=expires_at,
        scopes=scopes,
        allowed_models=models,
    )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke the key from now on (idempotent); the row stays for the audit trail."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def looks_like_api_key(token: str) -> bool:
    return token.startswith(f"{API_KEY_PREFIX}_")


def api_key_authenticate(key: str) -> ApiKey:
    """The active key matching `key` (its user loaded), recording its use; BearerTokenInvalid otherwise."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        raise BearerTokenInvalid("Invalid API key.", ErrorCode.API_KEY_INVALID)
    api_key = ApiKey.objects.select_related("user").filter(prefix=parts[1]).first()
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, _hash_key(key)):
        raise BearerTokenInvalid("Invalid API key.", ErrorCode.API_KEY_INVALID)
    now = timezone.now()
    if api_key.is_revoked:
        raise BearerTokenInvalid("This API key has been revoked.", ErrorCode.API_KEY_REVOKED)
    if api_key.is_expired(now):
        raise BearerTokenInvalid("This API key has expired.", ErrorCode.API_KEY_EXPIRED)
    if not api_key.user.is_active:
        raise BearerTokenInvalid("The owner of this API key is inactive.", ErrorCode.USER_INACTIVE)
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


# --- Bearer tokens (JWT access token or API key) -----------------------------------------------


def bearer_token_authenticate(token: str) -> tuple[AbstractBaseUser, ApiKey | AccessToken]:
    """(user, credential) for a JWT access token or a personal API key; BearerTokenInvalid otherwise."""
    token = token.strip()
    if not token:
        raise BearerTokenInvalid("The bearer token is empty.")
    if looks_like_api_key(token):
        api_key = api_key_authenticate(token)
        return api_key.user, api_key
    try:
        access = AccessToken(token)
    except TokenError as exc:
        raise BearerTokenInvalid("The access token is invalid or expired.") from exc
    try:
        # simplejwt's own lookup: user exists, is active, password unchanged since the token was issued.
        user = JWTAuthentication().get_user(access)
    except drf_exceptions.AuthenticationFailed as exc:
        detail: Any = exc.detail
        raise BearerTokenInvalid(str(detail), ErrorCode.TOKEN_NOT_VALID) from exc
    return user, access


def credentials_for_bearer_token(token: str) -> tuple[AbstractBaseUser, ApiKey | AccessToken] | None:
    """(user, credential) for a JWT access token or API key, or None (sync: it queries the database)."""
    if token[:7].lower() == "bearer ":
        token = token[7:]
    try:
        return bearer_token_authenticate(token)
    except BearerTokenInvalid:
        return None


def user_for_bearer_token(token: str) -> AbstractBaseUser | None:
    """The active user a JWT access token or API key belongs to, or None (sync: it queries the database)."""
    credentials = credentials_for_bearer_token(token)
    return credentials[0] if credentials is not None else None


async def acredentials_for_bearer_token(token: str) -> tuple[AbstractBaseUser, ApiKey | AccessToken] | None:
    """`credentials_for_bearer_token` for async callers (WebSocket consumers)."""
    return await sync_to_async(credentials_for_bearer_token)(token)


async def auser_for_bearer_token(token: str) -> AbstractBaseUser | None:
    """`user_for_bearer_token` for async callers."""
    return await sync_to_async(user_for_bearer_token)(token)


def refresh_token_blacklist(*, refresh: str) -> None:
    """Log out: blacklist the refresh token; BearerTokenInvalid if it is not a valid one."""
    try:
        RefreshToken(refresh).blacklist()
    except TokenError as exc:
        raise BearerTokenInvalid("The refresh token is invalid, expired or already revoked.") from exc
