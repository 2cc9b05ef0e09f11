"""Fixtures shared by every app's tests: users alice and bob, API clients, a live daphne."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmsite.testing import LiveServer, start_live_server

ROOT = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _fresh_default_cache():
    """Rate-limit counters and cached answers live in the caches: each test starts with none."""
    from django.core.cache import caches

    for alias in ("default", "responses"):
        caches[alias].clear()
    yield


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "correct-horse-battery")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "correct-horse-battery")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("sam", "sam@example.com", "correct-horse-battery", is_staff=True)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def live_server_factory(tmp_path) -> Iterator:
    """Start daphne processes with extra environment; each gets its own data folder unless told otherwise."""
    servers: list[LiveServer] = []

    def start(**extra_env: str) -> LiveServer:
        server = start_live_server(tmp_path / "data", **extra_env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
