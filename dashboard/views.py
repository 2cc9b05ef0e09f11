"""The dashboard page: a shell whose script (static/dashboard/dashboard.js) loads /api/v1/metrics."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from dashboard import selectors


@never_cache
def dashboard_page(request: HttpRequest) -> HttpResponse:
    """Staff only: anonymous visitors go to the login page, signed-in non-staff get 403."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.is_staff:
        raise PermissionDenied("The dashboard is for staff.")
    context = {"windows": list(selectors.WINDOWS), "default_window": selectors.DEFAULT_WINDOW, "refresh_seconds": 30}
    return render(request, "dashboard/index.html", context)
