"""Access rules every app uses: staff-only operations and owner-only objects."""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated

from accounts.models import SCOPE_METRICS, ApiKey
from llmsite.error_codes import ErrorCode

M = TypeVar("M", bound=Model)


def api_key_of(request: Any) -> ApiKey | None:
    """The API key a request authenticated with, or None (a session, a JWT, anonymous)."""
    credential = getattr(request, "auth", None)
    return credential if isinstance(credential, ApiKey) else None


def scope_refusal(api_key: ApiKey | None, scope: str | None) -> str | None:
    """Why `api_key` may not be used for `scope` (None: it may, or no key was used)."""
    if api_key is None or scope is None or api_key.allows_scope(scope):
        return None
    allowed = ", ".join(api_key.scopes) or "none"
    return f"This API key is not allowed to use {scope} (its scopes: {allowed})."


class IsAuthenticatedInScope(IsAuthenticated):
    """The default permission: logged in, and an API key only within its scopes.

    A view names the scope it belongs to in `required_scope` (chat, embeddings, metrics); views
    that name none (your account, your keys, your usage, the model list) accept every key.
    """

    def has_permission(self, request: Any, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        refusal = scope_refusal(api_key_of(request), getattr(view, "required_scope", None))
        if refusal:
            self.message, self.code = refusal, ErrorCode.SCOPE_NOT_ALLOWED
            return False
        return True


class IsStaff(BasePermission):
    """Operations that change the site (providers, caches, indexes, training): staff, logged in.

    An API key never acts as staff: a leaked key must not be able to change the site. A staff
    member's key with the `metrics` scope may read what a view marks `required_scope = "metrics"`.
    """

    message = "Only staff can do this."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        api_key = api_key_of(request)
        if api_key is None:
            return True
        scope = getattr(view, "required_scope", None)
        if scope == SCOPE_METRICS and request.method in SAFE_METHODS:
            refusal = scope_refusal(api_key, scope)
            if refusal:
                self.message, self.code = refusal, ErrorCode.SCOPE_NOT_ALLOWED
            return refusal is None
        self.message = "Staff operations need a login (session or access token), not an API key."
        self.code = ErrorCode.SCOPE_NOT_ALLOWED
        return False


def owned_by(queryset: QuerySet[M], user: Any, *, owner_field: str = "user", allow_staff: bool = False) -> QuerySet[M]:
    """The part of `queryset` that `user` owns (all of it for staff when `allow_staff`)."""
    if allow_staff and user.is_staff:
        return queryset
    if not user.is_authenticated:
        return queryset.none()
    return queryset.filter(**{owner_field: user})


def get_owned_or_404(
    queryset: QuerySet[M], user: Any, *, owner_field: str = "user", allow_staff: bool = False, **lookup: Any
) -> M:
    """The object matching `lookup` if `user` owns it, else Http404: another user's object looks like a missing one."""
    try:
        return owned_by(queryset, user, owner_field=owner_field, allow_staff=allow_staff).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from exc


async def aget_owned_or_404(
    queryset: QuerySet[M], user: Any, *, owner_field: str = "user", allow_staff: bool = False, **lookup: Any
) -> M:
    """`get_owned_or_404` for async code (consumers, async views)."""
    try:
        return await owned_by(queryset, user, owner_field=owner_field, allow_staff=allow_staff).aget(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from exc
