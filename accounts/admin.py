"""Admin: users with their API keys (never their secrets) and usage limits; simplejwt registers the token blacklist."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts import services
from accounts.models import API_KEY_SCOPES, ApiKey
from accounts.ratelimits import RateLimited, check_login_rate_limit
from llmsite.errors import ApplicationError
from usage.models import UsageLimit
from usage.windows import KIND_NAMES

User = get_user_model()


class UsageLimitInline(admin.StackedInline):
    """The one UsageLimit row of a user or a key. Requests read limits from the database, so a save applies at once."""

    model = UsageLimit
    max_num = 1
    extra = 1  # an empty form is not saved: no row means "the site defaults"
    verbose_name = verbose_name_plural = "Usage limits"
    description = ""

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[str | None, dict[str, Any]]]:
        return [(None, {"fields": KIND_NAMES, "description": self.description})]


class UserUsageLimitInline(UsageLimitInline):
    fk_name = "user"
    description = "Empty = the site default (the USAGE_DEFAULT_* settings)."


class ApiKeyUsageLimitInline(UsageLimitInline):
    fk_name = "api_key"
    description = "Limits of this key alone, on top of its user's. Empty = none of its own."


SEPARATORS = re.compile(r"[,\n]")


class ApiKeyAdminForm(forms.ModelForm):
    """Scopes as checkboxes, models as text (one per line or comma-separated); checked as the API checks them."""

    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in API_KEY_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "A key needs at least one scope."},
        help_text="what the key may be used for (staff operations always need a login)",
    )
    allowed_models = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Allowed models",
        help_text="model ids, one per line or comma-separated; empty: every model its user may call",
    )

    class Meta:
        model = ApiKey
        fields = ("scopes", "allowed_models")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["allowed_models"] = "\n".join(self.instance.allowed_models or ())

    def clean_scopes(self) -> list[str]:
        try:
            return services.checked_scopes(self.cleaned_data["scopes"])
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean_allowed_models(self) -> list[str]:
        models = [part.strip() for part in SEPARATORS.split(self.cleaned_data["allowed_models"]) if part.strip()]
        try:
            return services.checked_models(models)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyAdminForm
    list_display = (
        "display_prefix",
        "name",
        "user",
        "scope_list",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at", "expires_at")
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    # secret_hash is left out entirely: even the hash has no business on a screen.
    fields = (
        "user",
        "name",
        "display_prefix",
        "scopes",
        "allowed_models",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = ("user", "display_prefix", "created_at", "last_used_at")
    inlines = (ApiKeyUsageLimitInline,)
    actions = ("revoke",)
    date_hierarchy = "created_at"

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes or ()) or "-"

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
    """Django's user admin, with the user's API keys listed and their usage limits."""

    inlines = (ApiKeyInline, UserUsageLimitInline)
    list_display = ("username", "email", "is_staff", "is_active", "date_joined", "last_login")

    def get_inline_instances(self, request: HttpRequest, obj: Any = None) -> list[InlineModelAdmin]:
        # Adding a user asks only for a name and a password; keys and limits come on the change page.
        return super().get_inline_instances(request, obj) if obj is not None else []


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
