"""System checks for the metrics settings (run at start-up and by `manage.py check`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

MIDDLEWARE_PATH = "dashboard.middleware.MetricsMiddleware"


@register()
def metrics_settings_check(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    if settings.METRICS_FLUSH_SECONDS <= 0:
        problems.append(Error("METRICS_FLUSH_SECONDS must be more than 0.", id="dashboard.E001"))
    if settings.METRICS_FLUSH_BATCH < 1 or settings.METRICS_BUFFER_MAX < settings.METRICS_FLUSH_BATCH:
        problems.append(
            Error("METRICS_FLUSH_BATCH must be at least 1 and at most METRICS_BUFFER_MAX.", id="dashboard.E002")
        )
    if settings.METRICS_RETENTION_DAYS < 1:
        problems.append(Error("METRICS_RETENTION_DAYS must be at least 1.", id="dashboard.E003"))
    token = settings.METRICS_TOKEN
    if token and len(token) < 32:
        problems.append(
            Warning(
                "METRICS_TOKEN is shorter than 32 characters: anyone who guesses it can read the metrics.",
                hint="python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="dashboard.W001",
            )
        )
    if settings.METRICS_ENABLED and MIDDLEWARE_PATH not in settings.MIDDLEWARE:
        problems.append(
            Warning(
                f"METRICS_ENABLED is on but {MIDDLEWARE_PATH} is not in MIDDLEWARE: no request is recorded.",
                id="dashboard.W002",
            )
        )
    return problems
