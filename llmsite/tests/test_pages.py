"""The chat and documents pages without a browser: who may see them, and the policy they are served with.

Their behaviour in a real browser is tested in e2e/ (make test-e2e).
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

pytestmark = pytest.mark.django_db

PAGES = ["/", "/documents/"]


@pytest.mark.parametrize("path", PAGES)
def test_it_sends_anonymous_visitors_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_the_login_page_links_to_registration(client):
    page = client.get("/accounts/login/?next=/").content.decode()
    assert 'href="/accounts/register/?next=/"' in page


@pytest.mark.parametrize("path", PAGES)
def test_the_pages_load_their_scripts_from_static_files_only(client, alice, path):
    client.force_login(alice)
    page = client.get(path).content.decode()
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts, page
    assert all(re.search(r'\bsrc="/static/chat/[a-z]+\.js"', tag) and 'type="module"' in tag for tag in scripts)
    assert re.findall(r"<[^>]*\son[a-z]+\s*=", page) == []  # no inline event handlers either


@pytest.mark.parametrize("path", PAGES)
def test_the_pages_are_served_with_a_strict_policy_and_trusted_types(client, alice, path):
    client.force_login(alice)
    policy = client.get(path)["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert directives["trusted-types"] == "dompurify"


def test_every_response_carries_the_site_policy(client):
    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_the_api_docs_allow_exactly_their_own_inline_style(client):
    response = client.get("/api/docs/")
    page = response.content.decode()
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'self' 'sha256-{digest}'" in response["Content-Security-Policy"]
    assert "<script>" not in page  # the start-up script is a file (?script)
    assert client.get("/api/docs/?script=").status_code == 200
