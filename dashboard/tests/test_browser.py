"""A real browser (Debian's chromium driven by Playwright) opens the dashboard on a live daphne.

It logs in as staff, waits for the charts to be drawn from /api/v1/metrics, and checks there
were no console errors and no failed requests; the screenshot it saves must not be blank.
Skipped where Playwright or chromium is not installed (`pip install -r requirements-dev.txt`,
`apt-get install chromium`), failed instead under E2E_REQUIRED=1 as the e2e/ tests are.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest

from llmsite.testing import ROOT

pytestmark = [pytest.mark.live_server, pytest.mark.e2e]

PASSWORD = "correct-horse-battery-staple"
# Whether each chart's canvas has pixels drawn on it.
DRAWN = """() => ['endpoints', 'latency', 'statuses', 'timeline'].map((id) => {
    const canvas = document.getElementById('chart-' + id);
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return canvas.width > 0 && pixels.some((v) => v !== 0);
})"""


def png_distinct_bytes(png: bytes) -> int:
    """How many distinct byte values the image data holds (a blank page has a handful)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, data = 8, b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            data += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return len(set(zlib.decompress(data)))


def wait_until_recorded(url: str) -> None:
    """Poll the metrics API as staff until the server's flusher has written the requests made so far."""
    credentials = {"username": "ops", "password": PASSWORD}
    access = httpx.post(url + "/api/v1/auth/token", json=credentials, timeout=10).json()["access"]
    deadline = time.monotonic() + 30  # the flusher writes every 0.2 s: only a broken one gets near this
    while True:
        body = httpx.get(url + "/api/v1/metrics", headers={"Authorization": f"Bearer {access}"}, timeout=10).json()
        readyz = sum(e["requests"] for e in body["endpoints"] if e["endpoint"] == "/readyz")
        if body["requests"]["total"] >= 4 and readyz >= 2:
            return
        assert time.monotonic() < deadline, f"the requests were never written: {body['requests']}"
        time.sleep(0.1)


@pytest.fixture
def site(live_server_factory, tmp_path):
    server = live_server_factory(METRICS_FLUSH_SECONDS="0.2", LLM_LOAD_AT_START="never")
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "ops", "--email", "o@example.com"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return server


def add_usage(data_dir: Path) -> None:
    """A ledger row for `ops` (the live site serves no model here): the usage rankings have a row to show."""
    code = (
        "from django.contrib.auth import get_user_model; from usage.services import ledger_add; "
        "ledger_add(user=get_user_model().objects.get(username='ops'), api_key=None, model='tiny', "
        "kind='completion', prompt_tokens=120, completion_tokens=80, cost=1500000)"
    )
    env = {**os.environ, "DATA_DIR": str(data_dir)}
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True
    )


def test_staff_see_the_charts_drawn_without_errors(site, browser, tmp_path):
    # Not /healthz: liveness probes are answered before Django and are not recorded (llmsite/liveness.py).
    for path in ("/readyz", "/readyz", "/api/v1/metrics", "/no-such-page"):
        httpx.get(site.url + path, timeout=10)
    wait_until_recorded(site.url)
    add_usage(tmp_path / "data")

    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    try:
        page = context.new_page()
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
        page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

        page.goto(site.url + "/accounts/login/?next=/dashboard/")
        page.fill("input[name=username]", "ops")
        page.fill("input[name=password]", PASSWORD)
        page.click("form [type=submit]")
        page.wait_for_url("**/dashboard/")
        # (No wait_for_function: its polling evaluates strings, which the site's CSP forbids.)
        page.wait_for_selector("#dash-status:has-text('updated')", timeout=20_000)
        assert page.evaluate(DRAWN) == [True, True, True, True]
        requests_card = page.inner_text("#dash-cards dd[data-field=requests]")
        assert int(requests_card.replace(",", "")) >= 4
        assert "/readyz" in page.text_content("[data-chart=endpoints] table")  # in a closed <details>
        # Empty panels say so instead of drawing an empty chart.
        assert page.is_visible("[data-chart=training] [data-role=empty]")
        # The usage rankings: the ledger's one row in the users' and models' tables; keys: the row without one.
        users = page.text_content("[data-usage=users] tbody")
        assert "ops" in users and "200" in users and "1.5" in users
        assert "tiny" in page.text_content("[data-usage=models] tbody")
        assert "No key" in page.text_content("[data-usage=keys] tbody")
        with page.expect_response(lambda response: "usage_order=spend" in response.url):
            page.select_option("#dash-usage-order", "spend")
        page.wait_for_selector("#dash-status:has-text('updated')", timeout=20_000)
        assert "ops" in page.text_content("[data-usage=users] tbody")

        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone: one column, nothing cut off
        for _ in range(50):  # Chart.js resizes its canvases on the next animation frames
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow <= 0:
                break
            page.wait_for_timeout(100)
        assert overflow <= 0, f"the page is {overflow}px wider than a phone"
        page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)

        # Dark mode: the charts are redrawn in the dark palette when the preference changes.
        page.set_viewport_size({"width": 1280, "height": 1600})
        page.emulate_media(color_scheme="dark")
        page.wait_for_timeout(300)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(24, 24, 27)"
        assert page.evaluate(DRAWN) == [True, True, True, True]
        page.screenshot(path=str(tmp_path / "dashboard-dark.png"), full_page=True)
    finally:
        context.close()

    assert problems == [], "\n".join(problems)
    assert png_distinct_bytes(Path(shot).read_bytes()) > 50
    artifacts = os.environ.get("DASHBOARD_SCREENSHOT")
    if artifacts:  # to look at it: DASHBOARD_SCREENSHOT=/tmp/dashboard.png pytest dashboard/tests/test_browser.py
        shutil.copy(shot, artifacts)
        for variant in ("phone", "dark"):
            shutil.copy(tmp_path / f"dashboard-{variant}.png", artifacts.removesuffix(".png") + f"-{variant}.png")
