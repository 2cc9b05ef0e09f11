"""Inference routes under /api/v1/."""

from django.urls import path

from inference import apis, conversation_apis

urlpatterns = [
    path("predict", apis.predict, name="predict"),
    path("providers", apis.ProviderListApi.as_view(), name="providers"),
    path("providers/active", apis.ProviderActivateApi.as_view(), name="providers-active"),
    path("cache/stats", apis.CacheStatsApi.as_view(), name="cache-stats"),
    path("cache", apis.CacheClearApi.as_view(), name="cache-clear"),
    path("conversations", conversation_apis.ConversationListCreateApi.as_view(), name="conversations"),
    path(
        "conversations/<int:conversation_id>",
        conversation_apis.ConversationDetailApi.as_view(),
        name="conversation-detail",
    ),
]
