"""Fixtures for accounts tests: clean rate-limit counters, a frozen rate-limit clock, token helpers."""

from __future__ import annotations

from types import SimpleNamespace

import django_ratelimit.core
import pytest
from django.core.cache import caches

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def clean_rate_limits():
    # Counters live in the shared cache and user ids repeat from test to test: start each test at zero.
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def frozen_ratelimit_clock(monkeypatch):
    """Pin django-ratelimit's clock, so a window never rolls over in the middle of a test."""
    now = 1_700_000_000.0
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: now))
    return now


@pytest.fixture
def tokens_for(api_client):
    """POST /api/v1/auth/token and return {access, refresh}."""

    def get(username: str, password: str = PASSWORD) -> dict[str, str]:
        response = api_client.post("/api/v1/auth/token", {"username": username, "password": password}, format="json")
        assert response.status_code == 200, response.content
        return response.json()

    return get


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
