"""Inference routes under /api/v1/."""

from django.urls import path

from inference import apis

urlpatterns = [
    path("predict", apis.predict, name="predict"),
    path("providers", apis.ProviderListApi.as_view(), name="providers"),
    path("providers/active", apis.ProviderActivateApi.as_view(), name="providers-active"),
    path("models", apis.ModelPoolApi.as_view(), name="models"),
    path("models/<path:model>/load", apis.ModelLoadApi.as_view(action="load"), name="model-load"),
    path("models/<path:model>/unload", apis.ModelLoadApi.as_view(action="unload"), name="model-unload"),
    path("cache/stats", apis.CacheStatsApi.as_view(), name="cache-stats"),
    path("cache", apis.CacheClearApi.as_view(), name="cache-clear"),
]
