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

        # A form body the server cannot parse reaches the site (Twisted would answer it with a bare 400).
        credentials = {"username": "formfuzz", "password": "a long pass phrase 42"}
        assert http.post("/api/v1/auth/register", json=credentials).status_code == 201
        token = http.post("/api/v1/auth/token", json=credentials).json()["access"]
        for body, content_type, code in [
            (b"--b1--\r\n", "multipart/form-data; boundary=b1", "invalid"),  # a multipart body with no part at all
            (b"x", "multipart/form-data", "parse_error"),  # no boundary
        ]:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
            refused = http.post("/api/v1/embed/files", content=body, headers=headers)
            assert refused.status_code == 400
            assert refused.json()["error"]["code"] == code, refused.text
