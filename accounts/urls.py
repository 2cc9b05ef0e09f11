"""API routes under /api/v1/auth/."""

from django.urls import path

from accounts import apis

urlpatterns = [
    path("register", apis.RegisterApi.as_view(), name="auth-register"),
    path("token", apis.TokenObtainApi.as_view(), name="auth-token"),
    path("token/refresh", apis.TokenRefreshApi.as_view(), name="auth-token-refresh"),
    path("logout", apis.LogoutApi.as_view(), name="auth-logout"),
    path("me", apis.MeApi.as_view(), name="auth-me"),
    path("keys", apis.ApiKeyListCreateApi.as_view(), name="auth-keys"),
    path("keys/<int:key_id>", apis.ApiKeyDetailApi.as_view(), name="auth-key-detail"),
]
