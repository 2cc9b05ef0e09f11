"""WSGI entry point (for tools that need one; llmsite serves through ASGI with daphne)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmsite.settings")
application = get_wsgi_application()
