"""The documents page in a real browser: upload and paste into a collection, answer from it, delete."""

from __future__ import annotations

import uuid

import pytest

from e2e.helpers import ask, log_in, wait_for_answer, wait_until_live

pytestmark = pytest.mark.e2e

PLAN = [[("h1", "Budget"), ("p", "The storage budget for next year is 4,200 euros.")]]

HANDBOOK = b"""# Office hours

The llmsite office on Heron Street opens at 7:15 on Tuesdays.
The doorbell code is heron-42; visitors sign in at the front desk.
"""


def test_an_uploaded_document_is_listed_and_answers_cite_it(site, new_page):
    username = site.register()
    page = new_page()
    log_in(page, username)
    page.get_by_role("link", name="Documents").first.click()
    page.locator("#documents[data-ready='true']").wait_for()

    collection = f"handbook-{uuid.uuid4().hex[:4]}"
    page.get_by_label("Collection", exact=True).fill(collection)
    page.get_by_label("Files", exact=True).set_input_files(
        files=[{"name": "office-hours.md", "mimeType": "text/markdown", "buffer": HANDBOOK}]
    )
    page.get_by_label("Title of the pasted text").fill("Parking")
    page.get_by_label("Text", exact=True).fill("Visitors park behind the building, in bays 3 to 9.")
    page.get_by_role("button", name="Add to collection").click()
    page.get_by_text("Added the pasted text.").wait_for(timeout=60_000)  # loads the encoder
    assert "Added “office-hours.md” (1 passage)" in page.locator("#upload-status").text_content()
    documents = page.locator("#document-list li")
    assert sorted(documents.locator(".document-title").all_text_contents()) == ["Parking", "office-hours.md"]
    assert page.locator("#collection-list").get_by_text(collection).is_visible()

    page.get_by_role("link", name="Chat").first.click()
    wait_until_live(page)
    page.get_by_label("Answer from documents").check()
    page.get_by_label("Collection", exact=True).select_option(collection)
    ask(page, f"When does the office open on Tuesdays? {uuid.uuid4().hex[:4]}")
    answer = wait_for_answer(page)
    sources = answer.locator(".sources")
    assert sources.is_visible()
    titles = sources.locator(".source-title").all_text_contents()
    assert titles[0] == "office-hours.md"
    sources.locator("summary").first.click()
    assert "7:15 on Tuesdays" in sources.locator(".source-snippet").first.text_content()

    # The choice of collection is remembered for the next visit.
    page.reload()
    wait_until_live(page)
    assert page.get_by_label("Answer from documents").is_checked()

    page.goto("/documents/")
    page.locator("#documents[data-ready='true']").wait_for()
    page.get_by_role("button", name=f"Show documents of {collection}").click()
    page.get_by_role("button", name="Delete office-hours.md").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_text("Deleted “office-hours.md”.").wait_for()
    assert documents.locator(".document-title").all_text_contents() == ["Parking"]
    with site.api(username) as api:
        found = api.post("/api/v1/embed/search", json={"query": "doorbell code", "collection": collection}).json()
    assert [hit["metadata"].get("title") for hit in found["results"]] == ["Parking"]


def test_it_explains_what_is_wrong_with_an_upload(site, new_page):
    page = new_page()
    log_in(page, site.register())
    page.goto("/documents/")
    page.locator("#documents[data-ready='true']").wait_for()
    page.get_by_role("button", name="Add to collection").click()
    page.get_by_text("Choose a file or paste some text first.").wait_for()
    page.get_by_label("Files", exact=True).set_input_files(
        files=[{"name": "photo.pdf", "mimeType": "application/pdf", "buffer": b"\x89PNG\r\n\x1a\n" + bytes(64)}]
    )
    page.get_by_role("button", name="Add to collection").click()
    page.get_by_text("photo.pdf: the file is named .pdf but its content is a PNG image").wait_for(timeout=60_000)


def test_an_uploaded_pdf_and_docx_are_listed_and_answers_cite_the_pdf_page(site, new_page):
    from embeddings.tests.files import make_docx, make_pdf, sample_outline

    username = site.register()
    page = new_page()
    log_in(page, username)
    page.goto("/documents/")
    page.locator("#documents[data-ready='true']").wait_for()
    collection = f"vaults-{uuid.uuid4().hex[:4]}"
    page.get_by_label("Collection", exact=True).fill(collection)
    page.get_by_label("Files", exact=True).set_input_files(
        files=[
            {"name": "vaults.pdf", "mimeType": "application/pdf", "buffer": make_pdf(sample_outline(3, paragraphs=0))},
            {"name": "plan.docx", "mimeType": "application/octet-stream", "buffer": make_docx(PLAN)},
        ]
    )
    page.get_by_role("button", name="Add to collection").click()
    page.get_by_text("Added “plan.docx”").wait_for(timeout=60_000)
    assert "Added “vaults.pdf” (3 passages, 3 pages)" in page.locator("#upload-status").text_content()
    titles = page.locator("#document-list .document-title").all_text_contents()
    assert sorted(titles) == ["plan.docx", "vaults.pdf"]

    page.get_by_role("link", name="Chat").first.click()
    wait_until_live(page)
    page.get_by_label("Answer from documents").check()
    page.get_by_label("Collection", exact=True).select_option(collection)
    # Short pages: the tiny test model reads 256 tokens, passages included.
    ask(page, "What is the access code for vault 2?")
    answer = wait_for_answer(page)
    titles = answer.locator(".sources .source-title").all_text_contents()
    assert titles[0] == "vaults.pdf, page 2"
