"""Screenshots of the pages at desktop and phone widths, light and dark, saved under e2e/screenshots/."""

from __future__ import annotations

import uuid

import pytest

from e2e.helpers import (
    DESKTOP,
    PHONE,
    ask,
    image_stats,
    log_in,
    screenshot,
    site_answers_with_fake_upstream,
    wait_for_answer,
)
from inference.tests.fake_upstream import openai_sse, sse_reply

pytestmark = pytest.mark.e2e

ANSWER = (
    "To start the site locally:\n\n"
    "1. Install the requirements and prepare the models\n"
    "2. Apply the migrations\n"
    "3. Start daphne:\n\n"
    "```bash\nmake run\n```\n\n"
    "It then listens on **http://127.0.0.1:8000**; the `/readyz` probe says when the model is loaded."
)
GUIDE = "Start the development server with `make run`: it installs, migrates, prepares models and serves on port 8000."


def check_not_blank(browser, path) -> None:
    stats = image_stats(browser, path)
    assert stats["width"] > 0 and stats["height"] > 0, stats
    assert stats["colours"] > 30, f"{path.name} looks blank: {stats}"
    assert stats["top_share"] < 0.95, f"{path.name} is almost one colour: {stats}"


def test_the_pages_look_right_at_desktop_and_phone_widths_in_light_and_dark(site, browser, new_page):
    username = site.register("lin")
    with site.api(username) as api:
        for title in ("Trip ideas for Lisbon", "Explain FAISS indexes", "Regex for UK postcodes"):
            api.post("/api/v1/conversations", json={"title": title}).raise_for_status()
        api.post(
            "/api/v1/embed/add",
            json={"collection": "guide", "documents": [{"text": GUIDE, "metadata": {"title": "getting-started.md"}}]},
        ).raise_for_status()

    page = new_page(viewport=DESKTOP)
    log_in(page, username)
    words = [word + " " for word in ANSWER.split(" ")]
    site.upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(words)))
    with site_answers_with_fake_upstream(site):
        page.get_by_label("Answer from documents").check()
        ask(page, f"How do I run the site locally? ({uuid.uuid4().hex[:4]})")
        wait_for_answer(page)
    page.locator(".sources summary").first.click()

    shots = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size(DESKTOP)
        shots.append(screenshot(page, f"chat-desktop-{scheme}"))
        page.set_viewport_size(PHONE)
        shots.append(screenshot(page, f"chat-phone-{scheme}"))
    page.get_by_role("button", name="Show conversations").click()
    page.locator("#sidebar.open").wait_for()
    page.wait_for_timeout(250)  # the drawer slides in
    shots.append(screenshot(page, "chat-phone-conversations-dark"))
    page.keyboard.press("Escape")

    page.emulate_media(color_scheme="light")
    page.set_viewport_size(DESKTOP)
    page.goto("/documents/")
    page.get_by_role("button", name="Show documents of guide").click()
    page.locator("#document-list li").first.wait_for()
    page.evaluate("window.scrollTo(0, 0)")
    shots.append(screenshot(page, "documents-desktop-light"))
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size(PHONE)
    page.evaluate("window.scrollTo(0, 0)")
    shots.append(screenshot(page, "documents-phone-dark"))

    for path in shots:
        check_not_blank(browser, path)
