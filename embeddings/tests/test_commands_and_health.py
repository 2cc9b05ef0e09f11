"""manage.py rebuild_index / index_documents, and what /readyz says about the index."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from embeddings import services
from embeddings.health import index_check
from embeddings.models import Document

pytestmark = pytest.mark.django_db


def test_index_documents_adds_files_to_a_collection_and_skips_known_ones(store, alice, tmp_path):
    (tmp_path / "a.md").write_text("# Servers\nThe staging server is named kestrel-7.\n")
    (tmp_path / "b.txt").write_text("Owls hunt at night.")
    (tmp_path / "ignored.bin").write_bytes(b"\x00\x01")
    out = StringIO()
    call_command(
        "index_documents", str(tmp_path), "--collection", "docs", "--user", "alice", "--no-progress", stdout=out
    )
    assert "2 documents added" in out.getvalue()
    sources = Document.objects.filter(source__isnull=True)
    assert sorted(sources.values_list("metadata__filename", flat=True)) == ["a.md", "b.txt"]
    hit = services.retrieve(user=alice, collection="docs", query="staging server name", top_k=1)[0]
    assert hit.title == "a.md"

    out = StringIO()
    call_command("index_documents", str(tmp_path / "a.md"), "--collection", "docs", "--user", "alice", stdout=out)
    assert "0 documents added" in out.getvalue() and "1 already there" in out.getvalue()


def test_index_documents_reads_pdfs_replaces_changed_files_and_reports_bad_ones(store, alice, tmp_path):
    from embeddings.tests.files import make_pdf, sample_outline

    (tmp_path / "vaults.pdf").write_bytes(make_pdf(sample_outline(2)))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 file refused"):
        call_command(
            "index_documents", str(tmp_path), "--collection", "docs", "--user", "alice", stdout=out, stderr=err
        )
    assert "refused" in err.getvalue() and "broken.pdf" in err.getvalue() and "truncated" in err.getvalue()
    assert "indexing" in err.getvalue()  # the progress bar
    first = Document.objects.get(source__isnull=True, metadata__filename="vaults.pdf")
    assert set(first.chunks.values_list("page", flat=True)) == {1, 2}

    (tmp_path / "broken.pdf").unlink()
    (tmp_path / "vaults.pdf").write_bytes(make_pdf(sample_outline(3)))
    out = StringIO()
    call_command(
        "index_documents", str(tmp_path), "--collection", "docs", "--user", "alice", "--no-progress", stdout=out
    )
    assert "1 document added" in out.getvalue() and "1 replaced" in out.getvalue()
    assert not Document.objects.filter(id=first.id).exists()


def test_index_documents_names_a_missing_user_or_path(store, tmp_path):
    with pytest.raises(CommandError, match="no user"):
        call_command("index_documents", str(tmp_path), "--collection", "docs", "--user", "nobody")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("index_documents", str(tmp_path / "nope.md"), "--collection", "docs", "--user", "x")


def test_rebuild_index_re_encodes_every_document(store, alice):
    ids = services.document_add(user=alice, documents=[{"text": "one"}, {"text": "two"}]).ids
    store.clear()
    out = StringIO()
    call_command("rebuild_index", "--no-progress", stdout=out)
    assert "2 vectors" in out.getvalue()
    assert store.ids() == set(ids)


@pytest.mark.django_db(transaction=True)
def test_rebuild_index_in_the_background_is_a_job_that_a_worker_runs(store, alice):
    from django_tasks_db.models import DBTaskResult

    ids = services.document_add(user=alice, documents=[{"text": "one"}, {"text": "two"}]).ids
    store.clear()
    out = StringIO()
    call_command("rebuild_index", "--background", stdout=out)
    assert "Enqueued the rebuild as job" in out.getvalue()
    assert store.ids() == set()  # nothing happened here: the job waits for a worker
    (job,) = DBTaskResult.objects.filter(task_path="embeddings.tasks.rebuild_index")
    assert job.status == "READY"
    call_command("db_worker", "--batch", "--queue-name", "default", "--no-startup-delay")
    job.refresh_from_db()
    assert job.status == "SUCCESSFUL"
    assert store.ids() == set(ids)


def test_readiness_reports_the_real_index_state(encoder):
    ok, detail = index_check()
    assert ok and "loads at first use" in detail
    services.get_store()
    ok, detail = index_check()
    assert ok and "0 vectors, flat index (rebuilt)" in detail
    services.reset_store()
    services.get_store()
    ok, detail = index_check()
    assert ok and "(loaded)" in detail


def test_readiness_fails_when_the_encoder_cannot_load(settings, db):
    settings.EMBEDDING_MODEL = "/nowhere/encoder"
    ok, detail = index_check()
    assert not ok and "/nowhere/encoder" in detail
