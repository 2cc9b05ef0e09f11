import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from accounts.tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def test_the_login_page_links_to_registration(client):
    page = client.get("/accounts/login/?next=/dashboard/").content.decode()
    assert 'href="/accounts/register/?next=/dashboard/"' in page


def test_it_registers_in_the_browser_and_logs_in(client):
    response = client.post(
        "/accounts/register/",
        {"username": "grace", "email": "", "password1": PASSWORD, "password2": PASSWORD, "next": "/dashboard/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert client.get("/api/v1/auth/me").json()["username"] == "grace"


def test_the_register_page_shows_what_to_fix(client, alice):
    response = client.post("/accounts/register/", {"username": "alice", "password1": "x", "password2": "y"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_it_never_redirects_registration_off_site(client):
    data = {"username": "heidi", "password1": PASSWORD, "password2": PASSWORD, "next": "https://evil.example/"}
    assert client.post("/accounts/register/", data)["Location"] == "/"


def test_session_login_sets_a_httponly_samesite_cookie(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"


def test_csrf_is_enforced_for_session_authenticated_unsafe_requests(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    refused = client.post("/api/v1/auth/keys", {"name": "x"}, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]

    client.get("/accounts/register/")  # a page with a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/v1/auth/keys", {"name": "x"}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


def test_bearer_requests_need_no_csrf_token(alice, tokens_for):
    client = Client(enforce_csrf_checks=True)
    access = tokens_for("alice")["access"]
    response = client.post(
        "/api/v1/auth/keys", {"name": "x"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {access}"
    )
    assert response.status_code == 201


def run_django(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "JWT_SIGNING_KEY", "ENVIRONMENT")}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "llmsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_needs_its_own_jwt_signing_key(tmp_path):
    secret = secrets.token_urlsafe(60)
    refused = run_django("", ENVIRONMENT="production", SECRET_KEY=secret, DATA_DIR=str(tmp_path))
    assert refused.returncode != 0
    assert "needs JWT_SIGNING_KEY" in refused.stderr

    code = "from django.conf import settings as s; print(s.SIMPLE_JWT['SIGNING_KEY'] == 'k' * 64)"
    ok = run_django(code, ENVIRONMENT="production", SECRET_KEY=secret, JWT_SIGNING_KEY="k" * 64, DATA_DIR=str(tmp_path))
    assert ok.stdout.strip() == "True", ok.stderr


def test_development_generates_a_jwt_signing_key_once_and_keeps_it(tmp_path):
    code = "from django.conf import settings as s; print(s.SIMPLE_JWT['SIGNING_KEY'], s.SECRET_KEY)"
    first = run_django(code, DATA_DIR=str(tmp_path)).stdout.split()
    second = run_django(code, DATA_DIR=str(tmp_path)).stdout.split()
    assert first == second
    assert first[0] != first[1]
    assert (tmp_path / "jwt_signing_key").stat().st_mode & 0o077 == 0
