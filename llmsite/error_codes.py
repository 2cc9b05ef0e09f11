"""Every error `code` the site sends, in one registry (plain Python: the engines use it too).

A code is stable: clients switch on it, and docs/api.md lists them all (generated from this
enum by `error_code_table()`; a test keeps the two equal, and another fails on any `code="..."`
in the project that is not here). Each member carries the HTTP status it usually goes with and
what it means; a caller may still send another status when it knows better (an upstream's 503).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    status: int
    meaning: str

    def __new__(cls, value: str, status: int, meaning: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.meaning = meaning
        return member

    # --- input --------------------------------------------------------------------------------
    INVALID = "invalid", 400, "A field is missing, of the wrong type or out of bounds; `field` names it."
    BAD_REQUEST = "bad_request", 400, "The request could not be understood (e.g. a body that is not JSON)."
    INVALID_JSON = "invalid_json", 400, "A WebSocket message is not valid JSON."
    INVALID_FRAME = "invalid_frame", 400, "A WebSocket message is binary; send JSON text frames."
    TOO_LARGE = "too_large", 413, "The request body or WebSocket message is larger than the site accepts."
    PROMPT_TOO_LONG = "prompt_too_long", 400, "The input has more characters than allowed, or more tokens than fit."
    ERROR = "error", 400, "Another client error, named by its HTTP status (the message is the status's reason)."
    CONFLICT = "conflict", 409, "The request conflicts with the current state (e.g. a run that is already finished)."
    # --- accounts and access ----------------------------------------------------------------
    USERNAME_TAKEN = "username_taken", 400, "Registration: that username is taken."
    WEAK_PASSWORD = (
        "weak_password",
        400,
        "Registration: the password fails the password rules (the message says which).",
    )
    TOO_MANY_KEYS = "too_many_keys", 400, "The user already has the most personal API keys allowed; revoke one first."
    NOT_AUTHENTICATED = "not_authenticated", 401, "No credentials were sent."
    AUTHENTICATION_FAILED = "authentication_failed", 401, "The credentials were refused."
    NO_ACTIVE_ACCOUNT = "no_active_account", 401, "Token: no active account has that username and password."
    TOKEN_NOT_VALID = "token_not_valid", 401, "The JWT is expired, malformed or blacklisted."
    BAD_AUTHORIZATION_HEADER = "bad_authorization_header", 401, "The Authorization header is not `Bearer <token>`."
    API_KEY_INVALID = "api_key_invalid", 401, "No personal API key matches."
    API_KEY_REVOKED = "api_key_revoked", 401, "The personal API key was revoked."
    API_KEY_EXPIRED = "api_key_expired", 401, "The personal API key has expired."
    USER_INACTIVE = "user_inactive", 401, "The account behind these credentials is deactivated."
    PERMISSION_DENIED = "permission_denied", 403, "Signed in, but not allowed to do this (e.g. staff only)."
    FORBIDDEN = "forbidden", 403, "Not allowed (e.g. a failed CSRF check on a session-authenticated write)."
    RATE_LIMITED = "rate_limited", 429, "Too many requests; `Retry-After` says when to try again."
    QUOTA_EXCEEDED = (
        "quota_exceeded",
        429,
        "A usage limit (requests or tokens per minute, tokens per day or month, a spend budget) would be crossed;"
        " `limit` names it, `resets_at` and `Retry-After` say when it resets.",
    )
    SCOPE_NOT_ALLOWED = "scope_not_allowed", 403, "The API key's scopes do not include this endpoint's."
    MODEL_NOT_ALLOWED = "model_not_allowed", 403, "The API key may not call that model (its `models` list)."
    # --- finding things -----------------------------------------------------------------------
    NOT_FOUND = "not_found", 404, "Nothing of yours has that id (another user's looks exactly like a missing one)."
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "This path does not take that method; `Allow` lists those it does."
    NOT_ACCEPTABLE = "not_acceptable", 406, "The `Accept` header asks for a format this endpoint cannot give."
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415, "The body's Content-Type is not one this endpoint reads."
    PARSE_ERROR = "parse_error", 400, "The body could not be parsed in its declared Content-Type."
    MODEL_NOT_FOUND = "model_not_found", 404, "No model of that id; GET /v1/models lists them."
    # --- serving ----------------------------------------------------------------------------
    UNAVAILABLE = "unavailable", 503, "The model or a dependency cannot serve now (the message says why)."
    LOADING = "loading", 503, "The model is still loading; try again shortly."
    BUSY = "busy", 400, "A generation is already running on this WebSocket; cancel it or wait for `done`."
    PROVIDER_BUSY = "provider_busy", 503, "The local model's queue is full; `Retry-After` says when to try again."
    PROVIDER_ERROR = "provider_error", 502, "The model failed to answer (a permanent provider failure)."
    SHUTTING_DOWN = (
        "shutting_down",
        503,
        "The server is shutting down: it takes no new work, and an answer still running when its grace period"
        " ends stops with this error. Another instance may serve at once; `Retry-After` says when this one may.",
    )
    SERVER_ERROR = "server_error", 500, "The server failed; it has been logged. Never caused by what a client sends."
    # --- remote providers (the upstream API) ---------------------------------------------------
    UPSTREAM_AUTH = "upstream_auth", 502, "The remote provider refused the configured API key."
    UPSTREAM_NOT_FOUND = "upstream_not_found", 502, "The remote provider does not know the configured model or path."
    UPSTREAM_REJECTED = (
        "upstream_rejected",
        400,
        "The remote provider refused the request as invalid (its reason follows).",
    )
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited", 503, "The remote provider is rate limiting this site."
    UPSTREAM_OVERLOADED = "upstream_overloaded", 503, "The remote provider is overloaded."
    UPSTREAM_TIMEOUT = "upstream_timeout", 504, "The remote provider did not answer in time."
    UPSTREAM_UNREACHABLE = "upstream_unreachable", 502, "The remote provider could not be reached."
    UPSTREAM_DISCONNECTED = "upstream_disconnected", 502, "The connection to the remote provider broke off mid-answer."
    UPSTREAM_BAD_RESPONSE = "upstream_bad_response", 502, "The remote provider answered with something malformed."
    UPSTREAM_ERROR = "upstream_error", 502, "The remote provider failed (a 5xx, or an error it did not classify)."


def error_code_table() -> str:
    """The registry as the Markdown table docs/api.md shows."""
    rows = ["| code | usual status | meaning |", "|---|---|---|"]
    rows += [f"| `{code.value}` | {code.status} | {code.meaning} |" for code in ErrorCode]
    return "\n".join(rows)
