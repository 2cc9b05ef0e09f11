"""Account reads."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet

from accounts.models import ApiKey


def api_key_list(*, user: AbstractBaseUser) -> QuerySet[ApiKey]:
    """The user's keys that have not been revoked (expired ones included, so they can be cleaned up), newest first."""
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True)
