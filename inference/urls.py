"""Inference routes under /api/v1/."""

from django.urls import path

from inference import apis

urlpatterns = [
    path("predict", apis.predict, name="predict"),
    path("providers", apis.ProviderListApi.as_view(), name="providers"),
    path("providers/active", apis.ProviderActivateApi.as_view(), name="providers-active"),
    path("cache/stats", apis.CacheStatsApi.as_view(), name="cache-stats"),
    path("cache", apis.CacheClearApi.as_view(), name="cache-clear"),
]
