"""The usage page: a shell whose script (static/usage/usage.js) loads /api/v1/usage and /api/v1/auth/keys."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

# The spans the page offers, in days (the API allows up to 400).
SPANS = (7, 30, 90)
DEFAULT_SPAN = 30


@never_cache
@login_required
def usage_page(request: HttpRequest) -> HttpResponse:
    """Your own usage, limits and API keys; anonymous visitors go to the login page."""
    context = {"currency": settings.USAGE_CURRENCY, "spans": SPANS, "default_span": DEFAULT_SPAN}
    return render(request, "usage/usage.html", context)
