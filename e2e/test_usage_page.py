"""The usage page in a real browser: a new user's empty page, then a request through an API key and a limit."""

from __future__ import annotations

import pytest

from e2e.helpers import PHONE, STAFF, image_stats, log_in, screenshot

pytestmark = pytest.mark.e2e

# Whether the chart's canvas has pixels drawn on it.
DRAWN = """() => {
    const canvas = document.getElementById('usage-chart');
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return canvas.width > 0 && canvas.height > 0 && pixels.some((v) => v !== 0);
}"""


def open_usage(page):
    """/usage/ once both of its API calls have answered and the figures are written."""
    page.goto("/usage/")
    page.locator("#usage-status", has_text="updated").wait_for()


def card(page, field: str) -> str:
    return page.locator(f"#usage-totals dd[data-field={field}]").inner_text()


def as_int(text: str) -> int:
    return int("".join(ch for ch in text if ch.isdigit()))


def test_a_new_user_sees_their_request_their_key_and_their_limit(site, new_page, browser):
    from playwright.sync_api import expect

    username = site.register("usage")
    page = new_page()
    failures: list[str] = []
    page.on("response", lambda r: failures.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    log_in(page, username)

    # Nothing used yet: every part says so instead of drawing empty charts and tables.
    open_usage(page)
    assert card(page, "requests") == "0"
    expect(page.locator("#usage-days-empty")).to_have_text("No usage yet.")
    expect(page.locator("#usage-models-empty")).to_be_visible()
    expect(page.locator("#usage-chart-box")).to_be_hidden()
    expect(page.locator("#usage-limits-empty")).to_be_visible()
    expect(page.locator("#usage-keys-empty")).to_contain_text("You have no API keys")

    with site.api(username) as api:
        user_id = api.get("/api/v1/auth/me").json()["id"]
        created = api.post("/api/v1/auth/keys", json={"name": "notebook", "scopes": ["chat"]})
        created.raise_for_status()
    with site.api(STAFF) as staff:
        staff.put(f"/api/v1/usage/limits/{user_id}", json={"tokens_per_day": 2000}).raise_for_status()
    with site.api(username) as api:
        api.headers["Authorization"] = f"Bearer {created.json()['key']}"
        answer = api.post(
            "/v1/chat/completions",
            json={"model": "tiny-a", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8},
        )
        answer.raise_for_status()
    used = answer.json()["usage"]
    assert used["total_tokens"] > 0

    open_usage(page)
    assert card(page, "requests") == "1"
    assert as_int(card(page, "total_tokens")) == used["total_tokens"]
    expect(page.locator("#usage-chart-box")).to_be_visible()
    expect(page.locator("#usage-days-empty")).to_be_hidden()
    assert page.evaluate(DRAWN) is True

    models = page.locator("#usage-models tbody tr")
    expect(models).to_have_count(1)
    expect(models.first.locator("th")).to_have_text("tiny-a")

    key_row = page.locator("#usage-keys tbody tr", has_text="notebook")
    expect(key_row).to_have_count(1)
    cells = key_row.locator("td")
    expect(cells.nth(1)).to_have_text("chat")  # scopes
    expect(cells.nth(2)).to_have_text("All models")
    expect(cells.nth(4)).to_have_text("1")  # requests
    expect(page.locator("#usage-keys-empty")).to_be_hidden()

    # The limit: a bar at what is used of it, the remainder, and when it resets.
    limit = page.locator("#usage-limits li[data-kind=tokens_per_day]")
    expect(limit).to_be_visible()
    expect(limit).to_contain_text("Tokens per day")
    expect(limit).to_contain_text(f"{used['total_tokens']} of 2,000 used")
    expect(limit.locator(".usage-limit-remaining")).to_have_text(f"{2000 - used['total_tokens']:,} remaining")
    expect(limit.locator(".usage-limit-reset")).to_contain_text("Resets at")
    meter = limit.locator("meter")
    assert meter.evaluate("(m) => [m.max, m.value]") == [2000, used["total_tokens"]]
    expect(meter).to_have_accessible_name("Tokens per day (UTC)")
    expect(page.locator("#usage-limits-empty")).to_be_hidden()

    shot = screenshot(page, "usage-desktop-light")
    stats = image_stats(browser, shot)
    assert stats["colours"] > 30 and stats["top_share"] < 0.95, stats
    page.evaluate("document.getElementById('usage-days-h').scrollIntoView()")
    screenshot(page, "usage-desktop-tables-light")

    # A phone: one column, nothing cut off; the dark scheme redraws the chart.
    page.set_viewport_size(PHONE)
    page.emulate_media(color_scheme="dark")
    for _ in range(50):  # Chart.js resizes its canvas on the next animation frames
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow <= 0:
            break
        page.wait_for_timeout(100)
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    assert page.evaluate(DRAWN) is True
    screenshot(page, "usage-phone-dark")

    assert failures == [], failures
