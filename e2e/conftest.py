"""Browser tests: Debian's chromium driven by Playwright against a live daphne serving a tiny model.

One site serves the whole session: `tiny-a` (a two-layer Llama with the real SmolLM2 tokenizer)
as the default local model, `tiny-b` (another one) that a conversation may pick, `broken-model`
(a folder that fails to load), and a fake OpenAI-compatible upstream a staff user can switch the
site to (answers the tests script: markup, slow streams). Without chromium the tests skip with a
message, or fail under `make test-e2e` (E2E_REQUIRED=1), which installs it first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from e2e.helpers import DESKTOP, PASSWORD, STAFF
from llmsite.testing import ROOT, LiveServer, start_live_server


@dataclass
class Site:
    """The live site, its fake upstream, and how to reach its API as a given user."""

    server: LiveServer
    upstream: object
    data_dir: Path
    env: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def register(self, prefix: str = "user") -> str:
        """A new account (through the API); returns its username."""
        username = f"{prefix}-{uuid.uuid4().hex[:8]}"
        response = httpx.post(f"{self.url}/api/v1/auth/register", json={"username": username, "password": PASSWORD})
        response.raise_for_status()
        return username

    def api(self, username: str) -> httpx.Client:
        """An API client authenticated as `username` with a JWT."""
        if username not in self.tokens:
            response = httpx.post(f"{self.url}/api/v1/auth/token", json={"username": username, "password": PASSWORD})
            response.raise_for_status()
            self.tokens[username] = response.json()["access"]
        headers = {"Authorization": f"Bearer {self.tokens[username]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from django.conf import settings

    from llmsite.testing import build_tiny_model

    root = tmp_path_factory.mktemp("e2e-models")
    source = settings.BASE_DIR / "data" / "models" / "SmolLM2-135M-Instruct"
    try:
        build_tiny_model(root / "tiny-a", source=source, seed=1)
        build_tiny_model(root / "tiny-b", source=source, seed=2)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    (root / "broken-model").mkdir()
    (root / "broken-model" / "config.json").write_text("{}")  # listed as a model; its load fails
    return root


@pytest.fixture(scope="session")
def site(chromium, tiny_model_dir, tmp_path_factory) -> Iterator[Site]:
    from inference.tests.fake_upstream import FakeUpstream

    data_dir = tmp_path_factory.mktemp("e2e-site")
    with FakeUpstream() as upstream:
        env = {
            "MODELS_DIR": str(tiny_model_dir),
            "LLM_PROVIDER": "hf",
            "LLM_MODEL": "tiny-a",
            "DEVICE": "cpu",
            # tiny-a has 256 positions: leave room for the chat template and the prompt.
            "LLM_DEFAULT_MAX_NEW_TOKENS": "48",
            "LLM_MAX_NEW_TOKENS": "200",
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
            "OPENAI_API_KEY": "",
            "OPENAI_MODEL": "gpt-test",
            "LLM_REMOTE_MAX_RETRIES": "0",
            "RATELIMIT_FEEDBACK": "1000/m",
            "RATELIMIT_LOGIN": "1000/m",
        }
        server = start_live_server(data_dir, **env)
        try:
            site = Site(server=server, upstream=upstream, data_dir=data_dir, env=env)
            _create_staff(site)
            yield site
        finally:
            server.stop()


def _create_staff(site: Site) -> None:
    env = {**os.environ, "DATA_DIR": str(site.data_dir), **site.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            STAFF,
            "--email",
            "sam@example.com",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


class PageProblems:
    """What a page must never do: open a dialog (alert/confirm/prompt), throw, or violate the CSP."""

    def __init__(self, page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("console", self._console)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _console(self, message) -> None:
        text = message.text
        if message.type == "error" and ("Content Security Policy" in text or "TrustedHTML" in text):
            self.errors.append(text)

    def assert_none(self) -> None:
        assert self.dialogs == [], f"the page opened dialogs: {self.dialogs}"
        assert self.errors == [], f"the page failed: {self.errors}"


@pytest.fixture
def new_page(browser, site):
    """Open pages in fresh browser contexts (own cookies); each page is checked for dialogs, errors, CSP."""
    opened = []

    def open_page(*, viewport: dict | None = None, color_scheme: str = "light", permissions: list[str] | None = None):
        context = browser.new_context(
            base_url=site.url, viewport=viewport or DESKTOP, color_scheme=color_scheme, reduced_motion="reduce"
        )
        if permissions:
            context.grant_permissions(permissions, origin=site.url)
        context.set_default_timeout(20_000)
        page = context.new_page()
        problems = PageProblems(page)
        opened.append((context, problems))
        page.problems = problems
        return page

    yield open_page
    for context, _ in opened:
        context.close()
    for _, problems in opened:
        problems.assert_none()
