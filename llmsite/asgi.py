"""ASGI entry point: Django for HTTP, Channels for WebSockets (served by daphne through `python -m llmsite.serve`)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmsite.settings")
# Build the Django app first: it sets up the app registry the routing below imports from.
django_asgi_app = get_asgi_application()

from inference.engine import wait_for_startup  # noqa: E402

# Serve once the model is loaded (or failed, or LLM_STARTUP_WAIT_SECONDS passed), so /readyz is 200
# as soon as the port opens; a no-op where nothing loads at start (tests, LLM_LOAD_AT_START=never).
wait_for_startup()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from llmsite.liveness import answer_liveness  # noqa: E402
from llmsite.routing import websocket_urlpatterns  # noqa: E402
from llmsite.shutdown import tracked  # noqa: E402
from llmsite.websocket import browser_origin_validator  # noqa: E402

# `tracked`: while the server shuts down it waits for the requests counted here (llmsite/serve.py).
# `answer_liveness`: /healthz never waits behind Django's middleware threads (llmsite/liveness.py).
application = answer_liveness(
    tracked(
        ProtocolTypeRouter(
            {
                "http": django_asgi_app,
                "websocket": browser_origin_validator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
            }
        )
    )
)
