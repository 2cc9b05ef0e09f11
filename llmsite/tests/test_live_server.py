"""The site as `make run` serves it: daphne, DEBUG off, static files through WhiteNoise."""

import httpx
import pytest
from django.conf import settings

pytestmark = pytest.mark.live_server


def test_daphne_serves_health_docs_admin_and_static_files_with_debug_off(live_server_factory):
    server = live_server_factory(MODELS_DIR=str(settings.MODELS_DIR))
    with httpx.Client(base_url=server.url, timeout=10) as http:
        health = http.get("/healthz")
        assert health.json() == {"status": "ok"}
        assert health.headers["x-content-type-options"] == "nosniff"
        assert health.headers["x-frame-options"] == "DENY"
        assert "default-src" in health.headers["content-security-policy"]
        assert http.head("/healthz").status_code == 200
        wrong = http.delete("/healthz")  # passed on to Django
        assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text

        docs = http.get("/api/docs/")
        assert docs.status_code == 200
        bundle = http.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
        assert bundle.status_code == 200
        assert "javascript" in bundle.headers["content-type"]

        login = http.get("/admin/login/")
        assert login.status_code == 200
        assert 'name="password"' in login.text

        missing = http.get("/api/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
