"""Accounts REST API under /api/v1/auth/: register, JWT, me, personal API keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt import serializers as jwt_serializers
from rest_framework_simplejwt import views as jwt_views

from accounts import selectors, services
from accounts.models import API_KEY_SCOPES, MAX_KEY_MODELS, ApiKey
from accounts.permissions import get_owned_or_404
from accounts.ratelimits import check_login_rate_limit, check_rate_limit

User = get_user_model()


# Django's MinimumLengthValidator, as AUTH_PASSWORD_VALIDATORS configures it.
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 4096


# What the password rules ask that a schema can say: a minimum length, not only digits.
@extend_schema_field(
    {"type": "string", "minLength": PASSWORD_MIN_LENGTH, "maxLength": PASSWORD_MAX_LENGTH, "pattern": r"\D"}
)
class NewPasswordField(serializers.Field):
    """A new password; the password rules judge it in the service (`weak_password`, the message says which)."""

    default_error_messages = {
        "invalid": "Must be a string.",
        "max_length": f"Ensure this field has no more than {PASSWORD_MAX_LENGTH} characters.",
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        data = data.strip()  # as the token endpoint strips the password it checks
        if len(data) > PASSWORD_MAX_LENGTH:
            self.fail("max_length")
        return data

    def to_representation(self, value: Any) -> str:
        return value


class RegisterApi(APIView):
    authentication_classes = []  # anonymous by design: a stale session must not demand a CSRF token
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
        password = NewPasswordField(
            write_only=True,
            style={"input_type": "password"},
            help_text="refused when short, common, all digits, or like the username (the message says which)",
        )
        email = serializers.EmailField(required=False, allow_blank=True, default="", max_length=254)

        class Meta:
            ref_name = "Register"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()

        class Meta:
            ref_name = "RegisteredUser"

    @extend_schema(
        operation_id="auth_register",
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            429: OpenApiResponse(description="too many registrations from this address (RATELIMIT_LOGIN)"),
        },
        auth=[],
        summary="Create an account",
    )
    def post(self, request: Request) -> Response:
        check_rate_limit(request, "register", rate_setting="RATELIMIT_LOGIN")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        return Response(self.OutputSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenObtainApi(jwt_views.TokenObtainPairView):
    """Exchange username and password for an access and a refresh token."""

    @extend_schema(
        operation_id="auth_token",
        auth=[],
        responses={
            200: jwt_serializers.TokenObtainPairSerializer,
            401: OpenApiResponse(description="no active account has that username and password"),
            429: OpenApiResponse(description="too many attempts for this username or address (RATELIMIT_LOGIN)"),
        },
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        username = request.data.get("username") if hasattr(request.data, "get") else None
        check_login_rate_limit(request, username if isinstance(username, str) else None)
        return super().post(request, *args, **kwargs)


class TokenRefreshApi(jwt_views.TokenRefreshView):
    """Exchange a refresh token for a new access token and a new refresh token (the old one is blacklisted)."""

    @extend_schema(
        operation_id="auth_token_refresh",
        auth=[],
        responses={
            200: jwt_serializers.TokenRefreshSerializer,
            401: OpenApiResponse(description="the refresh token is expired, malformed or blacklisted"),
        },
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except User.DoesNotExist as exc:  # the token outlived its user
            raise exceptions.AuthenticationFailed("No active account found for the given token.") from exc


class LogoutApi(APIView):
    """Blacklist the refresh token; its access tokens expire on their own within minutes."""

    authentication_classes = []  # the refresh token is the credential
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField()

        class Meta:
            ref_name = "Logout"

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'  # so a bad refresh token is a 401, not a 403

    @extend_schema(
        operation_id="auth_logout",
        request=InputSerializer,
        responses={
            205: OpenApiResponse(description="Logged out: the refresh token is blacklisted."),
            401: OpenApiResponse(description="the refresh token is expired, malformed or already blacklisted"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.refresh_token_blacklist(refresh=data.validated_data["refresh"])
        except services.BearerTokenInvalid as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from exc
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        email = serializers.CharField(help_text="an email address, or '' when none was given")
        is_staff = serializers.BooleanField()

        class Meta:
            ref_name = "Me"

    @extend_schema(operation_id="auth_me", responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(request.user).data)


class ApiKeyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(source="display_prefix")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField(), help_text="what the key may be used for")
    models = serializers.ListField(
        child=serializers.CharField(), source="allowed_models", help_text="the models it may call; empty: all"
    )


class ApiKeyCreatedSerializer(ApiKeyOutputSerializer):
    key = serializers.CharField(help_text="The secret: shown only in this response; store it now.")


class ApiKeyListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
        expires_in_days = serializers.IntegerField(required=False, min_value=1, max_value=3650, allow_null=True)
        scopes = serializers.ListField(
            child=serializers.ChoiceField(choices=API_KEY_SCOPES),
            required=False,
            allow_empty=False,
            max_length=len(API_KEY_SCOPES),
            help_text="what the key may be used for (default: all); staff operations always need a login",
        )
        models = serializers.ListField(
            child=serializers.CharField(max_length=500),
            required=False,
            max_length=MAX_KEY_MODELS,
            help_text="model ids the key may call (GET /api/v1/models); default or empty: every model",
        )

        class Meta:
            ref_name = "ApiKeyCreate"

        def validate(self, attrs):
            days = attrs.pop("expires_in_days", None)
            if days is not None:
                if attrs["expires_at"] is not None:
                    raise serializers.ValidationError(
                        {"expires_in_days": "Give expires_at or expires_in_days, not both."}
                    )
                attrs["expires_at"] = timezone.now() + timedelta(days=days)
            return attrs

    @extend_schema(operation_id="auth_keys_list", responses={200: ApiKeyOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(ApiKeyOutputSerializer(selectors.api_key_list(user=request.user), many=True).data)

    @extend_schema(
        operation_id="auth_keys_create",
        request=InputSerializer,
        responses={
            201: ApiKeyCreatedSerializer,
            400: OpenApiResponse(description="invalid input, or 100 active keys already (`too_many_keys`)"),
            403: OpenApiResponse(description="an API key cannot create API keys: log in with your password"),
        },
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiKey):
            # A leaked key must not be able to mint keys that outlive its own revocation.
            raise exceptions.PermissionDenied("API keys cannot create API keys; log in with your password.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, secret = services.api_key_create(user=request.user, **data.validated_data)
        body = ApiKeyOutputSerializer(api_key).data | {"key": secret}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(APIView):
    @extend_schema(operation_id="auth_keys_revoke", responses={204: OpenApiResponse(description="Revoked.")})
    def delete(self, request: Request, key_id: int) -> Response:
        api_key = get_owned_or_404(ApiKey.objects.filter(revoked_at__isnull=True), request.user, pk=key_id)
        services.api_key_revoke(api_key=api_key)
        return Response(status=status.HTTP_204_NO_CONTENT)
