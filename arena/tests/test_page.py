"""The leaderboard page and the chat page's compare mode without a browser (their behaviour: e2e/test_arena_page.py)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_visitors_to_the_login_page(client):
    response = client.get("/arena/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/arena/"


def test_the_leaderboard_page_loads_its_scripts_from_static_files_only(client, alice):
    client.force_login(alice)
    response = client.get("/arena/")
    assert response.status_code == 200
    page = response.content.decode()
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert sorted(re.search(r'src="([^"]+)"', tag).group(1) for tag in scripts) == [
        "/static/arena/leaderboard.js",
        "/static/vendor/chartjs/chart.umd.min.js",
    ]
    assert re.findall(r"<[^>]*\son[a-z]+\s*=", page) == []
    assert 'data-leaderboard-url="/api/v1/arena/leaderboard"' in page


def test_signed_in_pages_link_to_the_arena_and_the_chat_has_compare_mode(client, alice):
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert '<a href="/arena/">Arena</a>' in page
    assert 'id="compare-toggle"' in page and 'id="arena-pane"' in page
    assert 'src="/static/chat/arena.js"' in page
