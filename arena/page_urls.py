"""The leaderboard page, mounted at /arena/ by llmsite/urls.py (its API lives in arena/urls.py)."""

from django.urls import path

from arena import views

urlpatterns = [path("", views.leaderboard_page, name="arena-page")]
