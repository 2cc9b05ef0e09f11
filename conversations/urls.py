"""Conversation routes under /api/v1/."""

from django.urls import path

from conversations import apis

urlpatterns = [
    path("conversations", apis.ConversationListCreateApi.as_view(), name="conversations"),
    path("conversations/<int:conversation_id>", apis.ConversationDetailApi.as_view(), name="conversation-detail"),
]
