"""The arena's leaderboard page: a table and a chart the page's script fills from the leaderboard API."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache


@never_cache
@login_required
def leaderboard_page(request: HttpRequest) -> HttpResponse:
    """The leaderboard; anonymous visitors go to the login page."""
    return render(request, "arena/leaderboard.html")
