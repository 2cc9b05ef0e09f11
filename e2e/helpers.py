"""What the browser tests do on the pages: sign in, ask, wait for answers, take screenshots."""

from __future__ import annotations

import base64
import contextlib
import re
from pathlib import Path

SCREENSHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "a long pass phrase 42"
STAFF = "sam"
DESKTOP = {"width": 1280, "height": 820}
PHONE = {"width": 390, "height": 844}


def prompt_box(page):
    return page.get_by_role("textbox", name="Message", exact=True)


def ask(page, text: str) -> None:
    prompt_box(page).fill(text)
    prompt_box(page).press("Enter")


def last_answer(page):
    return page.locator(".message.assistant").last


def wait_for_answer(page, timeout: float = 60_000):
    """The last answer once it has ended (its meta line is written then); generous for a busy machine."""
    from playwright.sync_api import expect

    answer = last_answer(page)
    expect(answer).not_to_have_class(re.compile(r"\bstreaming\b"), timeout=timeout)
    expect(answer.locator(".meta")).not_to_be_empty(timeout=timeout)
    return answer


def set_options(page, *, max_tokens: int | None = None, temperature: float | None = None, markdown: bool = True):
    page.get_by_text("Options", exact=True).click()
    if max_tokens is not None:
        page.get_by_label("Max tokens").fill(str(max_tokens))
    if temperature is not None:
        page.get_by_label("Temperature").fill(str(temperature))
    page.get_by_label("Format answers (Markdown)").set_checked(markdown)
    page.get_by_text("Options", exact=True).click()


def record_answer_lengths(page) -> None:
    """Note the last answer's text length at every change of the thread (what a viewer sees)."""
    page.evaluate(
        """() => {
            window.__lengths = [];
            const thread = document.getElementById("thread");
            new MutationObserver(() => {
                const answers = thread.querySelectorAll(".message.assistant .content");
                const last = answers[answers.length - 1];
                if (last) window.__lengths.push(last.textContent.length);
            }).observe(thread, { childList: true, subtree: true, characterData: true });
        }"""
    )


@contextlib.contextmanager
def site_answers_with_fake_upstream(site):
    """Switch the whole site to the fake OpenAI-compatible upstream (staff API), and back afterwards."""
    with site.api(STAFF) as staff:
        staff.post("/api/v1/providers/active", json={"provider": "openai", "model": "gpt-test"}).raise_for_status()
        try:
            yield
        finally:
            staff.post("/api/v1/providers/active", json={"provider": "hf", "model": "tiny-a"}).raise_for_status()


def log_in(page, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form; lands on the chat page."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    wait_until_live(page)


def wait_until_live(page) -> None:
    page.locator("#chat[data-ready='true']").wait_for()
    page.locator("#connection[data-state='open']").wait_for()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def image_stats(browser, path: Path) -> dict:
    """Decode a PNG in the browser: {width, height, colours (distinct, sampled), share of the commonest colour}."""
    context = browser.new_context()
    try:
        page = context.new_page()
        data = base64.b64encode(path.read_bytes()).decode()
        return page.evaluate(
            """async (data) => {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
                const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
                const ctx = canvas.getContext("2d");
                ctx.drawImage(bitmap, 0, 0);
                const pixels = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
                const counts = new Map();
                let samples = 0;
                for (let i = 0; i < pixels.length; i += 4 * 7) {
                    const key = (pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2];
                    counts.set(key, (counts.get(key) ?? 0) + 1);
                    samples += 1;
                }
                const top = Math.max(...counts.values());
                return { width: bitmap.width, height: bitmap.height, colours: counts.size, top_share: top / samples };
            }""",
            data,
        )
    finally:
        context.close()
