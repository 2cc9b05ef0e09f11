"""The evaluation pages in a browser: tiny-b evaluated against tiny-a, charts and answers, promote then roll back."""

from __future__ import annotations

import pytest

from e2e.helpers import PHONE, STAFF, log_in, screenshot
from e2e.test_screenshots import check_not_blank

pytestmark = pytest.mark.e2e

# Whether a chart's canvas has pixels drawn on it.
DRAWN = """(id) => {
    const canvas = document.getElementById(id);
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return canvas.width > 0 && canvas.height > 0 && pixels.some((v) => v !== 0);
}"""


def no_overflow(page) -> int:
    for _ in range(50):  # Chart.js resizes its canvases on the next animation frames
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow <= 0:
            break
        page.wait_for_timeout(100)
    return overflow


def test_an_evaluation_finishes_and_its_model_is_promoted_then_rolled_back(site, new_page, browser):
    from playwright.sync_api import expect

    page = new_page()
    failures: list[str] = []
    page.on("response", lambda r: failures.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    log_in(page, STAFF)

    # Started from the list page's form: tiny-b against tiny-a (the default) on two questions.
    page.goto("/evaluations/")
    page.locator("#evaluation-model option[value='tiny-b']").wait_for(state="attached")
    page.locator("#evaluation-model").select_option("tiny-b")
    page.locator("#evaluation-limit").fill("2")
    page.get_by_role("button", name="Evaluate").click()
    page.wait_for_url("**/evaluations/*/")
    evaluation = int(page.url.rstrip("/").rsplit("/", 1)[1])

    # The page polls until the job is done (held-out loss of both models, then the answers).
    expect(page.locator("#evaluation[data-status='succeeded']")).to_be_attached(timeout=240_000)
    expect(page.locator("#evaluation-status")).to_have_text("succeeded")
    expect(page.locator("#evaluation-progress")).to_be_hidden()
    figures = page.locator("#evaluation-figures tbody tr")
    expect(figures).to_have_count(2)
    expect(figures.nth(0).locator("td").first).to_have_text("tiny-b")
    expect(figures.nth(1).locator("td").first).to_have_text("tiny-a")
    with site.api(STAFF) as api:
        body = api.get(f"/api/v1/evaluations/{evaluation}").json()
    loss = body["metrics"]["models"]["tiny-b"]["eval_loss"]
    assert loss > 0
    shown = figures.nth(0).locator("td").nth(3).inner_text()
    assert float(shown.replace(",", "")) == pytest.approx(loss, abs=1e-4)
    for chart in ("chart-accuracy", "chart-loss"):
        assert page.evaluate(DRAWN, chart) is True, chart
    expect(page.locator("#chart-judge-box")).to_be_hidden()  # no judge configured

    answers = page.locator("#evaluation-examples tbody tr")
    expect(answers).to_have_count(2)
    header = page.locator("#evaluation-examples thead th")
    expect(header).to_have_text(["Question", "Accepted", "tiny-b", "✓/✗", "tiny-a", "✓/✗"])
    first = body["examples"]["results"]
    question = next(r for r in first if r["kind"] == "qa" and r["index"] == 0)
    expect(answers.first.locator("td").first).to_have_text(question["prompt"])
    expect(answers.first.locator("td").nth(3)).to_have_text("✓" if question["correct"] else "✗")

    shot = screenshot(page, "evaluation-desktop-light")
    check_not_blank(browser, shot)

    # Promote tiny-b with a reason: the site's default changes, the history shows it.
    expect(page.locator("#evaluation-default")).to_have_text("tiny-a")
    page.locator("#promote-reason").fill("better on the question set")
    page.get_by_role("button", name="Promote tiny-b").click()
    expect(page.locator("#promotion-status")).to_have_text("Promoted tiny-b.", timeout=60_000)
    expect(page.locator("#evaluation-default")).to_have_text("tiny-b")
    history = page.locator("#promotion-history tbody tr")
    expect(history.first).to_contain_text("better on the question set")
    with site.api(STAFF) as api:
        answer = api.post("/api/v1/predict", json={"prompt": "Hi", "max_new_tokens": 2})
        assert answer.json()["model"] == "tiny-b"

    # Roll back: tiny-a serves again; nothing is left to roll back.
    page.get_by_role("button", name="Roll back").click()
    expect(page.locator("#promotion-status")).to_have_text("Rolled back to tiny-a.", timeout=60_000)
    expect(page.locator("#evaluation-default")).to_have_text("tiny-a")
    expect(page.get_by_role("button", name="Roll back")).to_be_disabled()
    expect(history.first.locator("td").nth(1)).to_have_text("rollback")
    with site.api(STAFF) as api:
        answer = api.post("/api/v1/predict", json={"prompt": "Hi", "max_new_tokens": 2})
        assert answer.json()["model"] == "tiny-a"

    # A phone: nothing wider than the screen, the charts still drawn.
    page.set_viewport_size(PHONE)
    assert no_overflow(page) <= 0, "the page is wider than a phone"
    assert page.evaluate(DRAWN, "chart-accuracy") is True
    page.evaluate("window.scrollTo(0, 0)")
    check_not_blank(browser, screenshot(page, "evaluation-phone-light"))

    # The list page shows the evaluation with its figures.
    page.goto("/evaluations/")
    row = page.locator("#evaluation-list tbody tr", has_text=f"#{evaluation}")
    expect(row).to_contain_text("succeeded")
    assert failures == [], failures
