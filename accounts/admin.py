"""Admin: API keys (never their secrets) beside Django's users; simplejwt registers the token blacklist."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.models import ApiKey
from accounts.ratelimits import RateLimited, check_login_rate_limit

User = get_user_model()


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("display_prefix", "name", "user", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at", "expires_at")
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    # secret_hash is left out entirely: even the hash has no business on a screen.
    fields = ("user", "name", "display_prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = ("user", "display_prefix", "created_at", "last_used_at")
    actions = ("revoke",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a secret must be shown to its owner once: create keys with the API or `createapikey`

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("display_prefix", "name", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class AccountUserAdmin(UserAdmin):
    """Django's user admin, with the user's API keys listed."""

    inlines = (ApiKeyInline,)
    list_display = ("username", "email", "is_staff", "is_active", "date_joined", "last_login")


_admin_login = admin.site.login


def _rate_limited_admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """The admin's own login form guesses passwords as well as ours: same limits (RATELIMIT_LOGIN)."""
    if request.method == "POST":
        try:
            check_login_rate_limit(request, request.POST.get("username", ""))
        except RateLimited as exc:
            response = HttpResponse(
                f"Too many login attempts; try again in {exc.wait} seconds.", status=429, content_type="text/plain"
            )
            response["Retry-After"] = str(exc.wait)
            return response
    return _admin_login(request, extra_context)


admin.site.login = _rate_limited_admin_login
