"""Mounted at /api/v1/feedback by llmsite/urls.py."""

from django.urls import path

from feedback import apis

urlpatterns = [
    path("", apis.FeedbackApi.as_view(), name="feedback"),
]
