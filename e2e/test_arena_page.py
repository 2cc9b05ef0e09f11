"""The arena in a real browser: compare two models in the chat page, vote, see the names and the leaderboard.

A site of its own serves exactly two models, so the two the arena picks at random are always
those two: tiny-a (a random two-layer model in its runner process, which writes mostly blank
lines) and `openai/gpt-test` on a stand-in OpenAI-compatible upstream in this process, which
streams a scripted answer word by word. Screenshots of the compare mode and the leaderboard at
desktop and phone widths are checked non-blank.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from e2e.conftest import PageProblems
from e2e.helpers import DESKTOP, PASSWORD, PHONE, log_in, screenshot
from e2e.test_screenshots import check_not_blank
from inference.tests.fake_upstream import FakeUpstream, openai_sse, sse_reply
from llmsite.testing import LiveServer, start_live_server

pytestmark = pytest.mark.e2e

REMOTE = "openai/gpt-test"
MODELS = {"tiny-a", REMOTE}
WORDS = ["Blue ", "is ", "the ", "colour ", "of ", "a ", "clear ", "sky, ", "and ", "of ", "the ", "open ", "sea."]
# Whether the chart's canvas has pixels drawn on it.
DRAWN = """() => {
    const canvas = document.getElementById('arena-chart');
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return canvas.width > 0 && canvas.height > 0 && pixels.some((v) => v !== 0);
}"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def arena_site(chromium, tmp_path_factory, upstream) -> Iterator[LiveServer]:
    from arena.tests.conftest import build_tiny_models

    models = build_tiny_models(tmp_path_factory.mktemp("arena-e2e-models"), ("tiny-a",))
    server = start_live_server(
        tmp_path_factory.mktemp("arena-e2e-site"),
        MODELS_DIR=str(models),
        LLM_PROVIDER="hf",
        LLM_MODEL="tiny-a",
        DEVICE="cpu",
        LLM_DEFAULT_MAX_NEW_TOKENS="24",  # tiny-a has 256 positions
        OPENAI_BASE_URL=f"{upstream.url}/v1",
        OPENAI_API_KEY="",
        OPENAI_API_TYPE="openai",
        OPENAI_MODEL="gpt-test",
        ANTHROPIC_API_KEY="",
        LLM_FALLBACKS="",
        LLM_REMOTE_MAX_RETRIES="0",
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


def compare_and_vote(page, upstream, prompt: str, vote: str) -> tuple[str, str]:
    """Ask both models from compare mode, wait for both columns, vote; return the revealed (model A, model B)."""
    from playwright.sync_api import expect

    upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(WORDS), chunk_delay=0.05))
    page.locator("#arena-prompt").fill(prompt)
    page.locator("#arena-prompt").press("Enter")
    expect(page.locator("#arena-prompt-shown")).to_have_text(prompt)
    labels = page.locator(".arena-label")
    expect(labels).to_have_text(["Model A", "Model B"])  # anonymous while they write
    vote_bar = page.locator("#arena-vote")
    vote_bar.wait_for(state="visible")
    # Each column shows its side's whole answer as the site stored it (without opening and closing blank
    # lines; a random tiny model may write nothing else, and the column then says so).
    stored = page.evaluate(
        "async (id) => (await fetch(`/api/v1/arena/battles/${id}`)).json()",
        int(page.locator("#arena-pane").get_attribute("data-battle")),
    )
    for side in ("a", "b"):
        column = page.locator(f'.arena-answer[data-side="{side}"]')
        expected = stored[side]["text"].strip() or "(nothing but blank space)"
        assert column.locator(".arena-text").text_content() == expected
        assert column.locator(".arena-side-status").inner_text().startswith("Done")
    assert "".join(WORDS) in {stored["a"]["text"], stored["b"]["text"]}
    assert stored["model_a"] is None  # anonymous until the vote
    vote_bar.get_by_role("button", name=vote).click()
    expect(page.locator("#arena-result")).to_contain_text("Model A was")
    revealed = tuple(page.locator(".arena-model").all_inner_texts())
    models = tuple(text.removeprefix(" · ").strip(" ·") for text in revealed)
    assert set(models) == MODELS, models
    expect(page.locator("#arena-vote")).to_be_hidden()
    return models


def test_compare_vote_and_see_the_leaderboard(arena_site, upstream, open_page, browser):
    from playwright.sync_api import expect

    username = register(arena_site)

    page = open_page(viewport=DESKTOP, color_scheme="light")
    log_in(page, username)
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#arena-pane")).to_be_visible()
    expect(page.locator("#thread")).to_be_hidden()
    first = compare_and_vote(page, upstream, "Name a colour.", "A is better")
    # Side by side on a desktop.
    boxes = [page.locator(f'.arena-answer[data-side="{s}"]').bounding_box() for s in ("a", "b")]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]
    check_not_blank(browser, screenshot(page, "arena-desktop-light"))

    phone = open_page(viewport=PHONE, color_scheme="dark")
    log_in(phone, username)
    phone.goto("/#compare")  # the leaderboard links here
    expect(phone.locator("#arena-pane")).to_be_visible()
    compare_and_vote(phone, upstream, "Say hello.", "Tie")
    # Stacked on a phone.
    boxes = [phone.locator(f'.arena-answer[data-side="{s}"]').bounding_box() for s in ("a", "b")]
    assert boxes[1]["y"] > boxes[0]["y"]
    check_not_blank(browser, screenshot(phone, "arena-phone-dark"))

    # The leaderboard, linked from the header (and the chat sidebar): both models, with the votes just cast.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Arena").click()
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
