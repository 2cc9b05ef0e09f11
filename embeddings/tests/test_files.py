"""POST /api/v1/embed/files: real files in, chunks with page and heading out, bad files refused leaving nothing."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from embeddings.models import Collection, Document, IndexChange
from embeddings.tests.files import make_docx, make_html, make_image_pdf, make_markdown, make_pdf, sample_outline
from inference.grounding import ground

pytestmark = pytest.mark.django_db

URL = "/api/v1/embed/files"


@pytest.fixture
def client(api_client, store, alice):
    api_client.force_authenticate(alice)
    return api_client


def upload(client, data: bytes, filename: str, collection: str = "reports", **fields):
    body = {"file": SimpleUploadedFile(filename, data), "collection": collection, **fields}
    return client.post(URL, body, format="multipart")


def stored() -> tuple[int, int, int]:
    """(documents, collections, logged index changes): what a refused upload must leave unchanged."""
    return Document.objects.count(), Collection.objects.count(), IndexChange.objects.count()


def test_it_ingests_a_pdf_and_search_cites_its_page_and_heading(client, store):
    response = upload(client, make_pdf(sample_outline(3)), "vaults.pdf")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == "pdf" and body["pages"] == 3 and body["created"] is True
    assert body["filename"] == "vaults.pdf" and body["collection"] == "reports"
    assert body["ids"] == [body["document_id"]] and body["chunks"] >= 3
    chunks = Document.objects.filter(source_id=body["document_id"])
    assert chunks.count() == body["chunks"] and {c.page for c in chunks} == {1, 2, 3}
    assert len(store) == body["chunks"]  # every chunk is in the index, the source itself is not

    results = client.post(
        "/api/v1/embed/search", {"query": "access code for vault 2", "collection": "reports"}, format="json"
    ).json()["results"]
    assert "7026" in results[0]["text"]
    assert results[0]["page"] == 2
    assert results[0]["heading"] == "Chapter 2: Section about topic 2"
    assert results[0]["document_id"] == body["document_id"]


def test_grounded_sources_carry_the_file_and_page(client, alice):
    upload(client, make_pdf(sample_outline(3)), "vaults.pdf")
    messages, sources = ground(
        user=alice, collection="reports", top_k=2, prompt="What is the access code for vault 2?", messages=None
    )
    top = sources[0].as_dict()
    assert top["title"] == "vaults.pdf" and top["page"] == 2
    assert top["heading"] == "Chapter 2: Section about topic 2"
    assert "[1] vaults.pdf, page 2\n" in messages[0].content


@pytest.mark.parametrize(
    ("maker", "filename", "kind"),
    [(make_docx, "plan.docx", "docx"), (make_html, "page.html", "html"), (make_markdown, "notes.md", "markdown")],
)
def test_it_ingests_docx_html_and_markdown_with_headings(client, maker, filename, kind):
    response = upload(client, maker(sample_outline(2)), filename)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == kind and body["pages"] is None
    fact = Document.objects.get(source_id=body["document_id"], text__contains="vault 2 is 7026")
    assert fact.heading == "Chapter 2: Section about topic 2" and fact.page is None


def test_chunks_hold_at_most_the_configured_encoder_tokens(client, settings, encoder):
    settings.EMBEDDINGS_CHUNK_TOKENS = 48
    settings.EMBEDDINGS_CHUNK_OVERLAP_TOKENS = 8
    body = upload(client, make_pdf(sample_outline(2, paragraphs=6)), "long.pdf").json()
    texts = list(Document.objects.filter(source_id=body["document_id"]).values_list("text", flat=True))
    assert len(texts) > 10
    assert max(len(encoder.model.tokenizer(t)["input_ids"]) for t in texts) <= 48


def test_the_server_reports_an_uploads_stages_and_encoding_progress(client, alice, bob, monkeypatch):
    from embeddings.services import encoding, files

    monkeypatch.setattr(encoding, "PROGRESS_BATCH", 4)  # a small file still reports several steps
    seen = []
    real = files.upload_progress_reporter

    def recording(**kwargs):
        report = real(**kwargs)

        def both(stage, done=0, total=0):
            seen.append((stage, done, total))
            report(stage, done, total)

        return both

    monkeypatch.setattr(files, "upload_progress_reporter", recording)
    monkeypatch.setattr("embeddings.services.upload_progress_reporter", recording)
    body = upload(client, make_pdf(sample_outline(3, paragraphs=4)), "vaults.pdf", upload_id="up-12345678").json()
    total = body["chunks"]
    assert total > 4
    stages = [stage for stage, _, _ in seen]
    assert stages[0] == "extracting" and stages[-2:] == ["storing", "done"]
    encoded = [done for stage, done, _ in seen if stage == "encoding"]
    assert encoded[0] == 0 and encoded[-1] == total and encoded == sorted(encoded) and len(encoded) > 2

    progress = client.get("/api/v1/embed/files/progress/up-12345678")
    assert progress.status_code == 200
    assert progress.json() == {"stage": "done", "done": total, "total": total}
    client.force_authenticate(bob)
    assert client.get("/api/v1/embed/files/progress/up-12345678").status_code == 404


def test_a_refused_uploads_progress_says_failed(client):
    upload(client, make_image_pdf(1), "scan.pdf", upload_id="scan-0001")
    assert client.get("/api/v1/embed/files/progress/scan-0001").json()["stage"] == "failed"
    bad_id = upload(client, make_markdown(sample_outline(1)), "n.md", upload_id="no spaces!")
    assert bad_id.status_code == 400 and bad_id.json()["error"]["field"] == "upload_id"


def test_it_uses_the_title_given_and_the_files_own_title(client):
    given = upload(client, make_markdown(sample_outline(1)), "n.md", title="Vault notes").json()
    assert given["title"] == "Vault notes"
    own = upload(client, make_html(sample_outline(2), title="Quarterly report"), "q.html").json()
    assert own["title"] == "Quarterly report"


def test_re_uploading_a_changed_file_replaces_its_chunks(client, store):
    first = upload(client, make_pdf(sample_outline(2)), "vaults.pdf").json()
    changed = sample_outline(2)
    changed[1][-1] = ("p", "The access code for vault 2 is now 9911, kept by warden number 2.")
    second = upload(client, make_pdf(changed), "vaults.pdf").json()
    assert second["created"] is True and second["replaced"] == [first["document_id"]]
    assert not Document.objects.filter(id=first["document_id"]).exists()
    assert not Document.objects.filter(source_id=first["document_id"]).exists()
    assert Document.objects.filter(source__isnull=True).count() == 1
    assert len(store) == second["chunks"]  # the old vectors left the index
    results = client.post("/api/v1/embed/search", {"query": "access code for vault 2"}, format="json").json()
    assert "9911" in results["results"][0]["text"]
    assert all("7026" not in r["text"] for r in results["results"])


def test_re_uploading_the_same_file_changes_nothing(client):
    data = make_pdf(sample_outline(2))
    first = upload(client, data, "vaults.pdf").json()
    before = stored()
    again = upload(client, data, "vaults.pdf")
    assert again.status_code == 201
    assert again.json()["created"] is False and again.json()["document_id"] == first["document_id"]
    assert stored() == before


@pytest.mark.parametrize(
    ("data", "filename", "reason", "words"),
    [
        (lambda: b"%PDF-1.7\n" + b"garbage " * 500, "broken.pdf", "corrupt", "damaged"),
        (lambda: (pdf := make_pdf(sample_outline(2)))[: len(pdf) * 2 // 3], "truncated.pdf", "corrupt", "truncated"),
        (lambda: make_pdf(sample_outline(1), password="secret"), "locked.pdf", "encrypted", "password"),
        (lambda: make_image_pdf(2), "scan.pdf", "image_only", "OCR"),
        (lambda: b"\x89PNG\r\n\x1a\n" + bytes(300), "report.pdf", "type_mismatch", "PNG image"),
        (lambda: make_docx(sample_outline(1)), "report.pdf", "type_mismatch", "Word document"),
        (lambda: b"", "empty.txt", "empty", "empty"),
        (lambda: b"\x7fELF" + bytes(100), "tool", "unsupported_type", "program"),
    ],
)
def test_a_bad_file_is_a_400_saying_why_and_leaves_nothing(client, data, filename, reason, words):
    before = stored()
    response = upload(client, data(), filename, collection="fresh")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == "file" and error["reason"] == reason
    assert words in error["message"] and filename in error["message"]
    assert stored() == before
    assert not Collection.objects.filter(name="fresh").exists()


def test_a_file_over_the_size_limit_is_refused(client, settings):
    settings.EMBEDDINGS_MAX_FILE_BYTES = 2_000
    before = stored()
    response = upload(client, make_pdf(sample_outline(3)), "big.pdf")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["reason"] == "too_large" and "2,000" in error["message"]
    assert stored() == before


def test_a_request_far_over_the_size_limit_is_refused_before_its_body_is_read(client, settings):
    settings.EMBEDDINGS_MAX_FILE_BYTES = 2_000
    response = upload(client, b"words " * 40_000, "huge.txt")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["reason"] == "too_large" and error["message"].startswith("the upload has")
    assert Document.objects.count() == 0


def test_a_pdf_over_the_page_limit_is_refused(client, settings):
    settings.EMBEDDINGS_MAX_FILE_PAGES = 2
    response = upload(client, make_pdf(sample_outline(3)), "long.pdf")
    assert response.status_code == 400
    assert response.json()["error"]["reason"] == "too_many_pages"
    assert "3 pages" in response.json()["error"]["message"]
    assert Document.objects.count() == 0


def test_a_failure_while_storing_leaves_nothing_half_stored(client, monkeypatch):
    from embeddings.services import files

    upload(client, make_pdf(sample_outline(2)), "vaults.pdf")
    before = stored()

    def broken(**kwargs):
        raise RuntimeError("disk full")

    # The change log is written last in the transaction: failing there must roll back the new rows and the replacement.
    monkeypatch.setattr(files, "change_log", broken)
    changed = sample_outline(2)
    changed[0][-1] = ("p", "Another text entirely.")
    with pytest.raises(RuntimeError):
        upload(client, make_pdf(changed), "vaults.pdf")
    assert stored() == before


def test_it_needs_a_file_and_a_signed_in_user(api_client, store, alice):
    assert api_client.post(URL, {"collection": "x"}, format="multipart").status_code in (401, 403)
    api_client.force_authenticate(alice)
    response = api_client.post(URL, {"collection": "x"}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["field"] == "file"
    json_body = api_client.post(URL, {"collection": "x"}, format="json")
    assert json_body.status_code == 415
