"""The usage page, mounted at /usage/ by llmsite/urls.py (its API lives in usage/urls.py)."""

from django.urls import path

from usage import views

urlpatterns = [path("", views.usage_page, name="usage-page")]
