"""/usage/: signed-in users only, scripts from static files (no inline script, no CDN), and the APIs it reads."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders

from dashboard.tests.test_page import Scripts

pytestmark = pytest.mark.django_db


class Page(Scripts):
    """The dashboard page's reader (scripts, inline code, handlers, canvases), plus ids and style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.styles: list[str] = []

    def handle_starttag(self, tag, attrs):
        super().handle_starttag(tag, attrs)
        self.styles += [value or "" for name, value in attrs if name == "style"]
        self.ids.update(value for name, value in attrs if name == "id" and value)


@pytest.fixture
def alice_browser(client, alice):
    """A browser session (the page and its fetches use the session cookie)."""
    client.force_login(alice)
    return client


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/usage/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/usage/"


def test_it_renders_with_static_scripts_only(alice_browser):
    response = alice_browser.get("/usage/")
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    page = Page()
    html = response.content.decode()
    page.feed(html)
    sources = [script.get("src") for script in page.scripts]
    assert sources == ["/static/vendor/chartjs/chart.umd.min.js", "/static/usage/usage.js"]
    assert all("defer" in script for script in page.scripts)
    assert page.inline == [] and page.handlers == [] and page.styles == []  # a strict CSP allows this page
    for src in [*sources, "/static/usage/usage.css"]:
        assert finders.find(src.removeprefix("/static/")), f"{src} is not a static file"
    assert 'href="/static/usage/usage.css"' in html
    assert 'data-usage-url="/api/v1/usage"' in html and 'data-keys-url="/api/v1/auth/keys"' in html
    assert "http://" not in html.split("<main>")[1] and "https://" not in html.split("<main>")[1]


def test_it_has_a_place_for_every_part_and_its_empty_state(alice_browser):
    page = Page()
    page.feed(alice_browser.get("/usage/").content.decode())
    assert {
        "usage-totals", "usage-limits", "usage-limits-empty", "usage-chart", "usage-days-empty",
        "usage-models", "usage-models-empty", "usage-keys", "usage-keys-empty", "usage-status",
    } <= page.ids  # fmt: skip
    (canvas,) = page.canvases
    assert canvas.get("role") == "img" and canvas.get("aria-label")


def test_it_shows_costs_in_the_configured_currency(alice_browser, settings):
    settings.USAGE_CURRENCY = "EUR"
    html = alice_browser.get("/usage/").content.decode()
    assert 'data-currency="EUR"' in html
    assert "Cost (EUR)" in html


def test_the_site_header_links_signed_in_users_to_their_usage(client, alice_browser):
    assert 'href="/usage/"' in alice_browser.get("/").content.decode()
    alice_browser.logout()
    assert 'href="/usage/"' not in client.get("/accounts/login/").content.decode()


def test_the_apis_it_reads_answer_the_session_with_what_it_shows(alice_browser, alice):
    from accounts.services import api_key_create
    from usage.services import ledger_add, limits_set

    api_key, _ = api_key_create(user=alice, name="laptop", scopes=["chat"], models=["tiny"])
    ledger_add(
        user=alice, api_key=api_key, model="tiny", kind="completion", prompt_tokens=12, completion_tokens=30, cost=0
    )
    ledger_add(user=alice, api_key=None, model="tiny", kind="completion", prompt_tokens=5, completion_tokens=7, cost=0)
    limits_set(user=alice, values={"tokens_per_day": 2000})

    usage = alice_browser.get("/api/v1/usage").json()
    assert usage["totals"]["requests"] == 2 and usage["totals"]["total_tokens"] == 54
    assert [(d["prompt_tokens"], d["completion_tokens"]) for d in usage["by_day"]] == [(17, 37)]
    assert [(m["model"], m["total_tokens"]) for m in usage["by_model"]] == [("tiny", 54)]
    assert sorted((k["key"] or 0, k["total_tokens"]) for k in usage["by_key"]) == [(0, 12), (api_key.pk, 42)]
    (limit,) = usage["limits"]
    assert (limit["kind"], limit["scope"], limit["limit"]) == ("tokens_per_day", "user", 2000)
    assert limit["remaining"] == limit["limit"] - limit["used"] and limit["resets_at"]

    (key,) = alice_browser.get("/api/v1/auth/keys").json()
    assert (key["id"], key["name"], key["scopes"], key["models"]) == (api_key.pk, "laptop", ["chat"], ["tiny"])
    assert key["prefix"] and "last_used_at" in key
