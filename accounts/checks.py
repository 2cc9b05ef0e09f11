"""System checks for accounts settings: rate formats, and (deploy) the JWT signing key."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

RATE_SETTINGS = ("RATELIMIT_FEEDBACK", "RATELIMIT_LOGIN")
RATE_RE = re.compile(r"^[1-9]\d*/\d*[smhd]$")


@register()
def rate_limit_settings_check(app_configs, **kwargs) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name in RATE_SETTINGS:
        value = getattr(settings, name, None)
        if not isinstance(value, str) or not RATE_RE.match(value):
            errors.append(
                Error(
                    f"{name}={value!r} is not a rate.",
                    hint="Use <count>/<period> like 30/m, 1000/h or 100/5m (periods s, m, h, d).",
                    id="accounts.E001",
                )
            )
    return errors


@register(Tags.security, deploy=True)
def jwt_signing_key_check(app_configs, **kwargs) -> list[CheckMessage]:
    key = settings.SIMPLE_JWT.get("SIGNING_KEY", "")
    warnings: list[CheckMessage] = []
    if key == settings.SECRET_KEY:
        warnings.append(
            Warning("JWT_SIGNING_KEY equals SECRET_KEY.", hint="Give JWTs their own random key.", id="accounts.W001")
        )
    if len(key) < 32:
        warnings.append(
            Warning(
                "JWT_SIGNING_KEY is shorter than 32 characters.", hint="Use 50+ random characters.", id="accounts.W002"
            )
        )
    return warnings
