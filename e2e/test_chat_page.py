"""The chat page in a real browser: streaming, Stop, feedback, conversations, safety, fallbacks."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from e2e.helpers import (
    PASSWORD,
    STAFF,
    ask,
    last_answer,
    log_in,
    prompt_box,
    record_answer_lengths,
    screenshot,
    set_options,
    site_answers_with_fake_upstream,
    wait_for_answer,
    wait_until_live,
)
from inference.tests.fake_upstream import json_reply, openai_sse, sse_reply
from inference.tests.test_tool_calls import ADD as ADD_TOOL  # bounded: a whole call fits the tiny model's window

pytestmark = pytest.mark.e2e

XSS_PROMPT = "<img src=x onerror=alert(1)>"
MARKUP_ANSWER = [
    "Here it is: ",
    "<img src=x onerror=alert(2)>",
    " and ",
    "<script>alert(3)</script>",
    "\n\n<svg onload=alert(4)></svg> [click](javascript:alert(5)) **bold**",
]


def test_it_sends_anonymous_visitors_to_login_with_a_link_to_register(new_page):
    page = new_page()
    page.goto("/")
    assert re.search(r"/accounts/login/\?next=/$", page.url)
    register = page.get_by_role("link", name="Create one")
    assert "/accounts/register/" in register.get_attribute("href")


def test_it_streams_the_answer_token_by_token_and_shows_the_greedy_answer_exactly(site, new_page):
    page = new_page(permissions=["clipboard-read", "clipboard-write"])
    username = f"ada-{uuid.uuid4().hex[:6]}"
    page.goto("/accounts/register/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/")
    wait_until_live(page)

    prompt = f"Tell me a story about {uuid.uuid4().hex[:8]}"
    set_options(page, max_tokens=64, temperature=0, markdown=False)
    record_answer_lengths(page)
    ask(page, prompt)
    answer = wait_for_answer(page)
    shown = answer.locator(".content").text_content()

    lengths = page.evaluate("window.__lengths")
    partial = sorted({n for n in lengths if 0 < n < len(shown)})
    assert len(partial) >= 2, f"the answer did not grow while streaming: {lengths}"
    assert answer.get_attribute("data-transport") == "websocket"

    with site.api(STAFF) as staff:
        staff.delete("/api/v1/cache").raise_for_status()  # the API's answer must be its own, not the page's
    with site.api(username) as api:
        response = api.post("/api/v1/predict", json={"prompt": prompt, "max_new_tokens": 64, "temperature": 0})
    assert response.headers["X-Cache"] == "MISS"
    expected = response.json()["text"]
    assert expected
    assert shown == expected

    answer.get_by_role("button", name="Copy answer").click()
    assert page.evaluate("navigator.clipboard.readText()") == expected

    # The exchange is stored: the conversation is listed under its first words and reopens.
    item = page.locator("#conversation-list a", has_text=prompt[:20])
    item.wait_for()
    page.reload()
    wait_until_live(page)
    assert page.locator(".message.user .content").last.text_content() == prompt
    assert last_answer(page).locator(".content").text_content() == expected


def test_stop_cancels_the_answer_being_written(site, new_page):
    username = site.register()
    page = new_page()
    log_in(page, username)
    words = [f"word{i} " for i in range(80)]
    site.upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(words), chunk_delay=0.15))
    site.upstream.disconnected.clear()
    with site_answers_with_fake_upstream(site):
        ask(page, f"Count slowly {uuid.uuid4().hex[:6]}")
        answer = last_answer(page)
        answer.locator(".content").filter(has_text="word1 ").wait_for()
        screenshot(page, "chat-streaming-desktop-light")
        stop = page.get_by_role("button", name="Stop generating")
        stop.click()
        answer.locator(".badge", has_text="Stopped").wait_for()
        assert site.upstream.disconnected.wait(10), "the upstream request was not closed"
    text = answer.locator(".content").text_content()
    assert "word1" in text
    assert "word79" not in text
    assert page.get_by_role("button", name="Send").is_visible()
    assert not stop.is_visible()


def test_thumbs_down_with_a_comment_creates_a_feedback_row(site, new_page):
    username = site.register()
    page = new_page()
    log_in(page, username)
    ask(page, f"Say something {uuid.uuid4().hex[:6]}")
    answer = wait_for_answer(page)
    answer.get_by_role("button", name="Bad answer").click()
    answer.get_by_label("Comment (optional)").fill("Not helpful: <b>repeats itself</b>")
    answer.get_by_role("button", name="Send feedback").click()
    answer.get_by_text("Thanks for the feedback.").wait_for()
    assert answer.get_by_role("button", name="Bad answer").get_attribute("aria-pressed") == "true"

    with site.api(username) as api:
        rows = api.get("/api/v1/feedback").json()["results"]
    assert len(rows) == 1
    assert rows[0]["rating"] == -1
    assert rows[0]["comment"].startswith("Not helpful:")
    assert rows[0]["message"] == int(answer.get_attribute("data-message-id"))


def test_markup_in_a_prompt_or_an_answer_shows_as_text_and_never_runs(site, new_page):
    username = site.register()
    page = new_page()
    log_in(page, username)
    site.upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(MARKUP_ANSWER)))
    with site_answers_with_fake_upstream(site):
        ask(page, XSS_PROMPT)
        answer = wait_for_answer(page)

    def check(page):
        question = page.locator(".message.user .content").last
        assert question.text_content() == XSS_PROMPT
        content = last_answer(page).locator(".content")
        text = content.text_content()
        assert "<img src=x onerror=alert(2)>" in text
        assert "<script>alert(3)</script>" in text
        assert "<svg onload=alert(4)></svg>" in text
        assert content.locator("img, script, svg, [onerror], [onload]").count() == 0
        assert content.locator("strong").text_content() == "bold"  # Markdown still formats
        assert content.locator("a[href^='javascript']").count() == 0
        assert page.locator("img").count() == 0

    check(page)
    assert answer.get_attribute("data-message-id")
    # The sidebar names the conversation after the prompt, as text too.
    assert page.locator("#conversation-list a").first.text_content() == XSS_PROMPT

    # Plain-text mode shows the answer exactly as written.
    set_options(page, markdown=False)
    assert last_answer(page).locator(".content").text_content() == "".join(MARKUP_ANSWER)
    set_options(page, markdown=True)

    # Reopened from the stored conversation, it is just as inert.
    page.reload()
    wait_until_live(page)
    last_answer(page).locator(".meta").filter(has_text="gpt-test").wait_for()
    check(page)
    page.wait_for_timeout(300)  # any onerror handler would have fired by now
    assert page.problems.dialogs == []


def test_conversations_can_be_started_renamed_reopened_and_deleted(site, new_page):
    username = site.register()
    page = new_page()
    log_in(page, username)
    ask(page, f"First chat {uuid.uuid4().hex[:6]}")
    wait_for_answer(page)
    page.get_by_role("button", name="New chat").click()
    assert page.locator(".message").count() == 0
    assert page.get_by_role("heading", name="New chat").is_visible()
    ask(page, f"Second chat {uuid.uuid4().hex[:6]}")
    wait_for_answer(page)
    items = page.locator("#conversation-list li")
    items.nth(1).wait_for()
    assert items.count() == 2

    page.get_by_role("button", name=re.compile("^Rename “Second chat")).click()
    title = page.get_by_label("New title")
    title.fill("Renamed chat")
    title.press("Enter")
    page.locator("#conversation-list a", has_text="Renamed chat").wait_for()
    assert page.locator("#conversation-title").text_content() == "Renamed chat"

    page.locator("#conversation-list a", has_text="First chat").click()
    page.locator(".message.user .content", has_text="First chat").wait_for()
    assert page.locator(".message").count() == 2

    page.get_by_role("button", name=re.compile("^Delete “First chat")).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Delete").click()
    page.locator("#conversation-list a", has_text="First chat").wait_for(state="detached")
    assert page.locator(".message").count() == 0  # the open conversation is gone: a new chat
    with site.api(username) as api:
        titles = [c["title"] for c in api.get("/api/v1/conversations").json()["results"]]
    assert titles == ["Renamed chat"]


def test_it_falls_back_to_http_streaming_when_the_websocket_cannot_connect(site, new_page):
    username = site.register()
    page = new_page()
    page.route_web_socket(re.compile(r".*/ws/v1/chat/$"), lambda ws: ws.close(code=1011))
    log_in_without_socket(page, username)
    page.locator("#connection[data-state='fallback']").wait_for()
    record_answer_lengths(page)
    ask(page, f"Over HTTP please {uuid.uuid4().hex[:6]}")
    answer = wait_for_answer(page)
    assert answer.get_attribute("data-transport") == "http"
    assert answer.locator(".content").text_content()
    assert answer.get_attribute("data-message-id")  # appended to the conversation as over the socket


def test_a_dropped_connection_reconnects_by_itself(site, new_page):
    username = site.register()
    page = new_page()
    sockets = []

    def through(ws):
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r".*/ws/v1/chat/$"), through)
    log_in(page, username)
    sockets[-1].close(code=1012)  # "service restart"
    page.locator("#connection[data-state='reconnecting']").wait_for()
    page.locator("#connection[data-state='open']").wait_for()
    assert len(sockets) == 2
    ask(page, f"Still there? {uuid.uuid4().hex[:6]}")
    answer = wait_for_answer(page)
    assert answer.get_attribute("data-transport") == "websocket"


def log_in_without_socket(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    page.locator("#chat[data-ready='true']").wait_for()


def test_staff_switch_the_sites_model_from_the_page_and_see_provider_errors(site, new_page):
    page = new_page()
    log_in(page, STAFF)
    select = page.get_by_label("Active model (for the whole site)")
    expect_selected(select, "tiny-a · hf")
    try:
        select.select_option(label="gpt-test · openai")
        expect_selected(select, "gpt-test · openai")
        site.upstream.script(
            "POST", "/v1/chat/completions", json_reply(500, {"error": {"message": "upstream on fire"}})
        )
        ask(page, f"Are you there? {uuid.uuid4().hex[:6]}")
        error = last_answer(page).get_by_role("alert")
        error.wait_for()
        assert error.text_content().startswith("The model provider failed")
        select.select_option(label="tiny-a · hf")
        expect_selected(select, "tiny-a · hf")
    finally:
        with site.api(STAFF) as staff:
            staff.post("/api/v1/providers/active", json={"provider": "hf", "model": "tiny-a"}).raise_for_status()
    ask(page, f"And now? {uuid.uuid4().hex[:6]}")
    assert "tiny-a" in wait_for_answer(page).locator(".meta").text_content()


def expect_selected(select, label: str) -> None:
    select.page.wait_for_function(
        "([element, label]) => !element.disabled && element.selectedOptions[0]?.textContent === label",
        arg=[select.element_handle(), label],
    )


def test_it_explains_rate_limits_and_an_unavailable_model(site, new_page):
    """The server's errors, as the chat socket sends them, shown in words (a scripted socket)."""
    errors = iter(
        [
            {"code": "rate_limited", "message": "Too many requests (30/m for chat). Retry in 12 s."},
            {"code": "unavailable", "message": "the model failed to load: out of memory"},
        ]
    )

    def scripted(ws):
        def answer(message):
            if json.loads(message)["type"] == "generate":
                ws.send(json.dumps({"type": "error", "error": next(errors)}))

        ws.on_message(answer)
        ws.send(json.dumps({"type": "ready", "user": "scripted"}))

    username = site.register()
    page = new_page()
    page.route_web_socket(re.compile(r".*/ws/v1/chat/$"), scripted)
    log_in(page, username)

    # Shift+Enter starts a new line instead of sending.
    prompt_box(page).fill("first line")
    prompt_box(page).press("Shift+Enter")
    prompt_box(page).press_sequentially("second line")
    assert prompt_box(page).input_value() == "first line\nsecond line"
    assert page.locator(".message").count() == 0

    prompt_box(page).press("Enter")
    alert = last_answer(page).get_by_role("alert")
    alert.wait_for()
    assert alert.text_content() == "Rate limited Too many requests (30/m for chat). Retry in 12 s."
    assert page.locator(".message.user .content").last.text_content() == "first line\nsecond line"

    ask(page, "again")
    alert = last_answer(page).get_by_role("alert")
    alert.wait_for()
    assert alert.text_content() == "The model is unavailable the model failed to load: out of memory"
    assert page.get_by_role("button", name="Send").is_enabled()


SCHEMA = {
    "type": "object",
    "properties": {
        "colour": {"enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "required": ["colour", "count"],
    "additionalProperties": False,  # else a random model may go on naming new keys until its token limit
}


def test_answers_held_to_a_json_schema_show_as_indented_json(site, new_page):
    import jsonschema

    page = new_page()
    log_in(page, STAFF)
    wait_until_live(page)
    set_options(page, max_tokens=64, temperature=0, markdown=True)
    page.get_by_text("Options", exact=True).click()
    page.get_by_label("Answer as").select_option("json_schema")
    schema_box = page.get_by_label("JSON Schema")
    schema_box.fill("{not json")
    ask(page, "Pick a colour and a number.")
    # A schema that is not JSON is said beside it, and nothing is sent: the prompt stays.
    assert "not JSON" in page.locator("#opt-schema-error").text_content()
    assert prompt_box(page).input_value() == "Pick a colour and a number."
    assert page.locator(".message.assistant").count() == 0

    schema_box.fill(json.dumps(SCHEMA))
    page.get_by_text("Options", exact=True).click()
    prompt_box(page).press("Enter")
    answer = wait_for_answer(page)
    shown = answer.locator("pre.json-answer").text_content()
    jsonschema.validate(json.loads(shown), SCHEMA)  # the random model is held to the schema
    assert "\n  " in shown  # indented for reading
    page.reload()  # a reopened conversation shows it the same way
    wait_until_live(page)
    assert json.loads(last_answer(page).locator("pre.json-answer").text_content()) == json.loads(shown)


def test_answers_that_call_tools_show_each_call_as_a_card(site, new_page):
    import jsonschema

    page = new_page()
    log_in(page, STAFF)
    wait_until_live(page)
    set_options(page, max_tokens=48, temperature=0, markdown=True)
    page.get_by_text("Options", exact=True).click()
    tools_box = page.get_by_label("Tools")
    tools_box.fill("[{not json")
    ask(page, "Add 2 and 3.")
    # Tools that are not JSON are said beside them, and nothing is sent: the prompt stays.
    assert "not JSON" in page.locator("#opt-tools-error").text_content()
    assert prompt_box(page).input_value() == "Add 2 and 3."
    assert page.locator(".message.assistant").count() == 0

    tools_box.fill(json.dumps([ADD_TOOL]))
    page.get_by_label("Tool choice").select_option("required")
    page.get_by_text("Options", exact=True).click()
    prompt_box(page).press("Enter")
    answer = wait_for_answer(page)
    card = answer.locator(".tool-call")
    assert card.locator(".tool-call-name").text_content() == "add"
    shown = card.locator(".tool-call-arguments").text_content()
    jsonschema.validate(json.loads(shown), ADD_TOOL["function"]["parameters"])  # the random model is held to them
    assert "\n  " in shown  # indented for reading
    page.reload()  # a reopened conversation shows the call the same way
    wait_until_live(page)
    again = last_answer(page).locator(".tool-call")
    assert again.locator(".tool-call-name").text_content() == "add"
    assert json.loads(again.locator(".tool-call-arguments").text_content()) == json.loads(shown)
