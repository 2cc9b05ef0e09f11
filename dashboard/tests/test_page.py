"""/dashboard/: staff only, scripts from static files (no inline script, no CDN), a table behind every chart."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


class Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.handlers: list[str] = []
        self.canvases: list[dict[str, str | None]] = []
        self.tables = 0
        self.headings: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.handlers += [name for name in attributes if name.startswith("on")]
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        elif tag == "canvas":
            self.canvases.append(attributes)
        elif tag == "table":
            self.tables += 1
        elif tag in ("h1", "h2"):
            self.headings.append(tag)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(data)


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/dashboard/"


def test_signed_in_users_who_are_not_staff_get_403(alice_client):
    assert alice_client.get("/dashboard/").status_code == 403


def test_staff_get_the_page_with_static_scripts_only(staff_client):
    response = staff_client.get("/dashboard/")
    assert response.status_code == 200
    page = Scripts()
    page.feed(response.content.decode())
    sources = [script.get("src") for script in page.scripts]
    assert sources == ["/static/vendor/chartjs/chart.umd.min.js", "/static/dashboard/dashboard.js"]
    assert page.inline == [] and page.handlers == []  # a strict CSP (script-src 'self') allows this page
    for src in sources:
        assert finders.find(src.removeprefix("/static/")), f"{src} is not a static file"
    # Every chart has an accessible name and a table with the same figures.
    assert len(page.canvases) == 8
    assert all(canvas.get("role") == "img" and canvas.get("aria-label") for canvas in page.canvases)
    # Each chart's table, and the usage rankings' three (users, keys, models).
    assert page.tables == len(page.canvases) + 3
    assert page.headings[0] == "h1" and page.headings.count("h2") >= len(page.canvases)
    html = response.content.decode()
    assert 'data-metrics-url="/api/v1/metrics"' in html
    assert "http://" not in html.split("<main>")[1] and "https://" not in html.split("<main>")[1]


def test_the_vendored_chartjs_is_the_recorded_version():
    path = finders.find("vendor/chartjs/chart.umd.min.js")
    head = open(path, encoding="utf-8").read(200)  # noqa: SIM115
    assert "Chart.js v4.6.1" in head
    assert finders.find("vendor/chartjs/LICENSE.md")
    assert finders.find("vendor/chartjs/chart.umd.min.js.map")  # referenced by the file; collectstatic needs it


def test_the_admin_home_links_to_the_dashboard(staff, client):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert 'href="/dashboard/"' in response.content.decode()


def test_the_site_header_links_staff_to_the_dashboard(staff_client, alice_client):
    assert 'href="/dashboard/"' in staff_client.get("/").content.decode()
    assert 'href="/dashboard/"' not in alice_client.get("/").content.decode()
