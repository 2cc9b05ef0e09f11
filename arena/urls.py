"""Mounted at /api/v1/arena/ by llmsite/urls.py."""

from django.urls import path

from arena import apis

urlpatterns = [
    path("battles", apis.battle_create, name="arena-battles"),
    path("battles/<int:battle_id>", apis.BattleDetailApi.as_view(), name="arena-battle"),
    path("battles/<int:battle_id>/vote", apis.BattleVoteApi.as_view(), name="arena-vote"),
    path("leaderboard", apis.LeaderboardApi.as_view(), name="arena-leaderboard"),
    path("votes/export", apis.VotesExportApi.as_view(), name="arena-votes-export"),
]
