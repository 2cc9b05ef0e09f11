"""Access rules every app uses: staff-only operations and owner-only objects."""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework.permissions import BasePermission

M = TypeVar("M", bound=Model)


class IsStaff(BasePermission):
    """Operations that change the site (providers, caches, indexes, training): staff only."""

    message = "Only staff can do this."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)


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
