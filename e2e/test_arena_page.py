"""The arena in a real browser: compare two tiny models in the chat page, vote, see the names and the leaderboard.

A site of its own serves exactly two models (tiny-a and tiny-b, in runner processes), so the two
the arena picks at random are always those two and both answer. Screenshots of the compare mode
and the leaderboard at desktop and phone widths are checked non-blank.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from e2e.conftest import PageProblems
from e2e.helpers import DESKTOP, PASSWORD, PHONE, log_in, screenshot
from e2e.test_screenshots import check_not_blank
from llmsite.testing import LiveServer, start_live_server

pytestmark = pytest.mark.e2e

MODELS = {"tiny-a", "tiny-b"}
# Whether the chart's canvas has pixels drawn on it.
DRAWN = """() => {
    const canvas = document.getElementById('arena-chart');
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return canvas.width > 0 && canvas.height > 0 && pixels.some((v) => v !== 0);
}"""


@pytest.fixture(scope="module")
def arena_site(chromium, tmp_path_factory) -> Iterator[LiveServer]:
    from arena.tests.conftest import build_tiny_models

    models = build_tiny_models(tmp_path_factory.mktemp("arena-e2e-models"))
    server = start_live_server(
        tmp_path_factory.mktemp("arena-e2e-site"),
        MODELS_DIR=str(models),
        LLM_PROVIDER="hf",
        LLM_MODEL="tiny-a",
        DEVICE="cpu",
        LLM_DEFAULT_MAX_NEW_TOKENS="24",  # tiny models have 256 positions
        OPENAI_API_KEY="",
        ANTHROPIC_API_KEY="",
        EMBEDDINGS_LOAD_AT_START="never",
        RATELIMIT_LOGIN="1000/m",
    )
    yield server
    server.stop()


@pytest.fixture
def open_page(browser, arena_site):
    """Fresh browser contexts on the arena site, each checked for dialogs, errors and CSP violations."""
    opened = []

    def open_page(*, viewport: dict, color_scheme: str):
        context = browser.new_context(
            base_url=arena_site.url, viewport=viewport, color_scheme=color_scheme, reduced_motion="reduce"
        )
        context.set_default_timeout(60_000)  # a first answer starts the models' runners
        page = context.new_page()
        opened.append((context, PageProblems(page)))
        return page

    yield open_page
    for context, _ in opened:
        context.close()
    for _, problems in opened:
        problems.assert_none()


def register(site: LiveServer) -> str:
    username = f"arena-{uuid.uuid4().hex[:8]}"
    response = httpx.post(f"{site.url}/api/v1/auth/register", json={"username": username, "password": PASSWORD})
    response.raise_for_status()
    return username


def compare_and_vote(page, prompt: str, vote: str) -> tuple[str, str]:
    """Ask both models from compare mode, wait for both columns, vote; return the revealed (model A, model B)."""
    from playwright.sync_api import expect

    page.locator("#arena-prompt").fill(prompt)
    page.locator("#arena-prompt").press("Enter")
    expect(page.locator("#arena-prompt-shown")).to_have_text(prompt)
    labels = page.locator(".arena-label")
    expect(labels).to_have_text(["Model A", "Model B"])  # anonymous while they write
    vote_bar = page.locator("#arena-vote")
    vote_bar.wait_for(state="visible")
    for side in ("a", "b"):
        column = page.locator(f'.arena-answer[data-side="{side}"]')
        assert column.locator(".arena-text").evaluate("(el) => el.textContent.length") > 0
        assert column.locator(".arena-side-status").inner_text().startswith("Done")
    vote_bar.get_by_role("button", name=vote).click()
    expect(page.locator("#arena-result")).to_contain_text("Model A was")
    revealed = tuple(page.locator(".arena-model").all_inner_texts())
    models = tuple(text.removeprefix(" · ").strip(" ·") for text in revealed)
    assert set(models) == MODELS, models
    expect(page.locator("#arena-vote")).to_be_hidden()
    return models


def test_compare_vote_and_see_the_leaderboard(arena_site, open_page, browser):
    from playwright.sync_api import expect

    username = register(arena_site)

    page = open_page(viewport=DESKTOP, color_scheme="light")
    log_in(page, username)
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#arena-pane")).to_be_visible()
    expect(page.locator("#thread")).to_be_hidden()
    first = compare_and_vote(page, "Name a colour.", "A is better")
    # Side by side on a desktop.
    boxes = [page.locator(f'.arena-answer[data-side="{s}"]').bounding_box() for s in ("a", "b")]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]
    check_not_blank(browser, screenshot(page, "arena-desktop-light"))

    phone = open_page(viewport=PHONE, color_scheme="dark")
    log_in(phone, username)
    phone.goto("/#compare")  # the leaderboard links here
    expect(phone.locator("#arena-pane")).to_be_visible()
    compare_and_vote(phone, "Say hello.", "Tie")
    # Stacked on a phone.
    boxes = [phone.locator(f'.arena-answer[data-side="{s}"]').bounding_box() for s in ("a", "b")]
    assert boxes[1]["y"] > boxes[0]["y"]
    check_not_blank(browser, screenshot(phone, "arena-phone-dark"))

    # The leaderboard, linked from the header: both models, with the votes just cast.
    page.get_by_role("link", name="Arena", exact=True).click()
    page.wait_for_url("**/arena/")
    page.locator("#arena-leaderboard[data-ready='true']").wait_for()
    rows = page.locator("#arena-table tbody tr")
    expect(rows).to_have_count(2)
    assert {rows.nth(i).locator("th").inner_text() for i in range(2)} == MODELS
    # A's win and a tie: the model shown as A the first time leads.
    assert rows.nth(0).locator("th").inner_text() == first[0]
    assert rows.nth(0).locator("td").nth(3).inner_text() == "2"
    page.wait_for_function(DRAWN)
    check_not_blank(browser, screenshot(page, "leaderboard-desktop-light"))

    small = open_page(viewport=PHONE, color_scheme="light")
    log_in(small, username)
    small.goto("/arena/")
    small.locator("#arena-leaderboard[data-ready='true']").wait_for()
    expect(small.locator("#arena-table tbody tr")).to_have_count(2)
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways on a phone: {width}px"
    check_not_blank(browser, screenshot(small, "leaderboard-phone-light"))
