"""Origin checking for WebSockets: browsers must come from this site; scripts have no Origin."""

from __future__ import annotations

from typing import Any

from channels.security.websocket import OriginValidator
from django.conf import settings


class BrowserOriginValidator(OriginValidator):
    """Channels' AllowedHostsOriginValidator, except that a handshake without Origin is let through.

    Every browser sends Origin on a WebSocket handshake, and a browser is what cross-site
    WebSocket hijacking abuses (it carries the session cookie): those are checked against
    ALLOWED_HOSTS. Programs (websockets, wscat, the OpenAI-style clients) send no Origin and
    authenticate with a token in their first message, which no other site can forge.
    """

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)


def browser_origin_validator(application: Any) -> BrowserOriginValidator:
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)
