"""The model picker of the chat page: each conversation talks to the model picked for it, and says which answered."""

from __future__ import annotations

import uuid

import pytest

from e2e.helpers import PHONE, ask, last_answer, log_in, wait_for_answer, wait_until_live

pytestmark = pytest.mark.e2e


def picker(page):
    return page.get_by_label("Model for this conversation")


def test_a_conversation_answers_with_the_model_picked_for_it_and_keeps_it(site, new_page):
    from playwright.sync_api import expect

    username = site.register()
    page = new_page()
    log_in(page, username)
    select = picker(page)
    expect(select).to_be_enabled()
    expect(select).to_have_value("tiny-a")  # the default, preselected
    first = select.locator("option").first
    expect(first).to_have_attribute("value", "tiny-a")
    expect(first).to_contain_text("default")
    assert select.locator("option[value='tiny-b']").count() == 1
    assert select.locator("option[value='all-MiniLM-L6-v2']").count() == 0  # embedding models answer nothing

    select.select_option("tiny-b")
    prompt = f"Which model are you? {uuid.uuid4().hex[:6]}"
    ask(page, prompt)
    answer = wait_for_answer(page)
    expect(answer.locator(".answered-by")).to_have_text("tiny-b")
    expect(select.locator("option[value='tiny-b']")).to_contain_text("loaded")  # the list followed the load

    page.reload()
    wait_until_live(page)
    expect(picker(page)).to_have_value("tiny-b")
    expect(last_answer(page).locator(".answered-by")).to_have_text("tiny-b")

    # The next turn needs no picking: the conversation talks to tiny-b.
    ask(page, "And again?")
    expect(wait_for_answer(page).locator(".answered-by")).to_have_text("tiny-b")
    with site.api(username) as api:
        conversation = api.get("/api/v1/conversations").json()["results"][0]
        messages = api.get(f"/api/v1/conversations/{conversation['id']}").json()["messages"]
    assert conversation["model"] == "tiny-b"
    assert [m["model"] for m in messages if m["role"] == "assistant"] == ["tiny-b", "tiny-b"]

    # A new chat starts on the default again, and the default answers it.
    page.get_by_role("button", name="New chat").click()
    expect(picker(page)).to_have_value("tiny-a")
    ask(page, f"Hello {uuid.uuid4().hex[:6]}")
    expect(wait_for_answer(page).locator(".answered-by")).to_have_text("tiny-a")


def test_a_model_that_cannot_load_is_listed_disabled_with_the_reason(site, new_page):
    from playwright.sync_api import expect

    username = site.register()
    with site.api(username) as api:
        refused = api.post("/api/v1/predict", json={"prompt": "hi", "model": "broken-model"})
    assert refused.status_code == 503, refused.text

    page = new_page(viewport=PHONE)
    log_in(page, username)
    select = picker(page)
    broken = select.locator("option[value='broken-model']")
    expect(broken).to_be_disabled()
    expect(broken).to_contain_text("unavailable")
    assert "broken-model" in broken.get_attribute("title")  # the load's own reason names the model
    expect(select).to_have_value("tiny-a")

    # At phone width the picker fits the screen and still works.
    box = select.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    select.select_option("tiny-b")
    ask(page, f"Small screen {uuid.uuid4().hex[:6]}")
    expect(wait_for_answer(page).locator(".answered-by")).to_have_text("tiny-b")
