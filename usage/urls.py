"""Usage routes under /api/v1/usage."""

from django.urls import path

from usage import apis

urlpatterns = [
    path("usage", apis.UsageApi.as_view(), name="usage"),
    path("usage/limits/<int:user_id>", apis.UserLimitsApi.as_view(), name="usage-limits"),
]
