"""In a real browser: sources shown again when a conversation is reopened, and deleting a whole collection."""

from __future__ import annotations

import uuid

import pytest

from e2e.helpers import ask, last_answer, log_in, wait_for_answer, wait_until_live

pytestmark = pytest.mark.e2e

PARTS = "Part XK-4471 is the coolant pump of the north press; it is replaced every 18 months."


def test_sources_come_back_with_a_reopened_conversation_and_a_collection_can_be_deleted(site, new_page):
    username = site.register()
    collection = f"parts-{uuid.uuid4().hex[:4]}"
    with site.api(username) as api:
        documents = [{"text": PARTS, "metadata": {"title": "parts.md"}}, {"text": "The canteen opens at noon."}]
        response = api.post("/api/v1/embed/add", json={"documents": documents, "collection": collection})
        assert response.status_code == 201, response.text
    page = new_page()
    log_in(page, username)
    wait_until_live(page)
    page.get_by_label("Answer from documents").check()
    page.get_by_label("Collection", exact=True).select_option(collection)
    ask(page, "How often is part XK-4471 replaced?")
    wait_for_answer(page)
    assert last_answer(page).locator(".source-title").first.text_content() == "parts.md"

    page.reload()  # the reopened conversation reads its sources from the stored answer
    wait_until_live(page)
    sources = last_answer(page).locator(".sources")
    sources.wait_for()
    assert sources.locator(".source-title").first.text_content() == "parts.md"

    page.goto("/documents/")
    page.locator("#documents[data-ready='true']").wait_for()
    page.get_by_role("button", name=f"Delete collection {collection}").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_text(f"Deleted “{collection}” and 2 documents.").wait_for()
    assert not page.locator("#collection-list").get_by_text(collection).count()
    with site.api(username) as api:
        assert api.get("/api/v1/embed/collections").json()["results"] == []
        gone = api.post("/api/v1/embed/search", json={"query": "XK-4471", "collection": collection})
        assert gone.status_code == 404
