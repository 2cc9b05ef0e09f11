"""Fixtures shared by every app's tests: users alice and bob, API clients, a live daphne."""

from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def _in_memory_channel_layer(request):
    """In-process WebSocket tests talk to the consumer through the in-memory channel layer.

    Each async test runs on an event loop of its own, and channels_redis keeps its connections and
    receive state per loop: a consumer's pending receive on a loop the test has closed hung the
    teardown. Under daphne there is one loop per process, and the Redis layer is exercised there,
    by the live servers of the PostgreSQL + Redis lane (llmsite/tests/test_workers_live.py).
    """
    from django.conf import settings

    if "redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"].lower():
        yield
        return
    from channels.layers import channel_layers

    overrides = request.getfixturevalue("settings")
    overrides.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def usage_clock(monkeypatch) -> dict:
    """Pin the usage limits' clock inside the current minute, so no window rolls over during a test.

    Returns {"now": datetime}; set another moment to move time on.
    """
    from django.utils import timezone

    import usage.services

    moment = {"now": timezone.now().replace(second=30, microsecond=0)}
    monkeypatch.setattr(usage.services, "clock", lambda: moment["now"])
    return moment


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


def client_for(user):
    """An API client signed in as `user` (authentication forced: the tests of auth itself live in accounts)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def alice_client(alice):
    return client_for(alice)


@pytest.fixture
def bob_client(bob):
    return client_for(bob)


@pytest.fixture
def staff_client(staff):
    return client_for(staff)


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


# --- browser tests (e2e/, dashboard) ---------------------------------------------------------
# One Playwright session for the whole run: a second sync_playwright() in the same process fails.
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium (never a downloaded build); skips, or fails under E2E_REQUIRED=1, without it."""
    missing = None
    if not CHROMIUM.is_file():
        missing = f"chromium is not installed at {CHROMIUM}: `make test-e2e` installs it (apt-get install chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            missing = "the playwright package is missing: `make install-dev` installs it"
    if missing:
        if os.environ.get("E2E_REQUIRED") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


# --- faults ------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path) -> Iterator:
    """Mount tmpfs file systems of a given size (e.g. "64k") on fresh folders; they are unmounted after the test.

    A full disk is real only on a real file system: this needs root (CI and the dev machines run
    as root); elsewhere the test is skipped and says why.
    """
    import shutil
    import subprocess

    mounted: list[Path] = []
    mount_command, umount_command = shutil.which("mount"), shutil.which("umount")

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs to fill up needs root")
        if not mount_command or not umount_command:
            pytest.skip("mount and umount are not installed")
        folder = tmp_path / f"disk-{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(
            [mount_command, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:  # root without the right to mount (an unprivileged container)
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run([umount_command, "--lazy", str(folder)], check=False)


# --- lanes -------------------------------------------------------------------------------------
# `make test-services` runs the suite again on PostgreSQL and Redis (TEST_LANE=services). A test that
# touches neither the database nor a live server behaves the same on both, and already ran in the
# SQLite lane: only the others run again here (docs/testing.md).
BACKEND_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}


def pytest_collection_modifyitems(config, items):
    if os.environ.get("TEST_LANE") != "services":
        return
    selected, deselected = [], []
    for item in items:
        uses_backends = (
            item.get_closest_marker("django_db")
            or item.get_closest_marker("live_server")
            or BACKEND_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        (selected if uses_backends else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
