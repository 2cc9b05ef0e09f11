"""The saved index survives a process killed in the middle of saving it, and a disk that fills up.

The victim is a real `manage.py rebuild_index` process on this test's database, stopped at a
chosen point of its save (llmsite.tests.crashpoint) and killed with SIGKILL. A restart is what a
server does at start: a fresh store loads the saved index, verified, and repairs it from the
database when it cannot be used.
"""

from __future__ import annotations

import os

import pytest
from django.core.management import CommandError, call_command

from embeddings import services
from embeddings.health import index_check
from embeddings.store import MANIFEST_FILE
from llmsite.testing import database_url
from llmsite.tests.crashpoint import kill, stop_at

# transaction=True: the child process reads committed rows.
pytestmark = [pytest.mark.crash, pytest.mark.real_model, pytest.mark.django_db(transaction=True)]

FIRST = [
    {"text": "The llmsite staging server is named kestrel-7."},
    {"text": "Bananas are rich in potassium and taste sweet."},
]
LATER = [
    {"text": "Owls hunt small mammals at night."},
    {"text": "The Eiffel Tower stands in Paris, France."},
]


def child_env(index_dir) -> dict[str, str]:
    """The environment of a manage.py process working on this test's database and index folder."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "EMBEDDINGS_DIR": str(index_dir),
        "HF_HUB_OFFLINE": "1",
    }


def saved_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in (".lock", ".vectors.lock"))


@pytest.mark.parametrize(
    ("point", "saved"),
    [
        ("before-replace:index-*.faiss", "previous"),  # the new index written and fsynced, not yet in place
        ("before-replace:" + MANIFEST_FILE, "previous"),  # the new index in place, its manifest not yet
        ("after-replace:" + MANIFEST_FILE, "new"),  # both in place, the process not yet done
    ],
)
def test_a_save_killed_at_any_point_leaves_an_index_that_loads_and_answers(
    store, alice, index_dir, settings, point, saved
):
    first = services.document_add(user=alice, documents=FIRST, collection="notes").ids  # saved: the first two
    settings.EMBEDDINGS_AUTOSAVE = False
    later = services.document_add(user=alice, documents=LATER, collection="notes").ids  # in the database only

    victim = stop_at(point, ["rebuild_index", "--no-progress"], env=child_env(index_dir), folder=index_dir.parent)
    kill(victim)
    on_disk = store.read_manifest()
    assert on_disk["count"] == {"previous": len(first), "new": len(first) + len(later)}[saved]

    services.reset_store()  # a restart: a fresh store loads what is on disk
    services.get_store()
    status = services.store_status()
    assert status["state"] == "ready", status
    # Never a rebuild: whatever the moment, one complete index (the old one or the new one) is on disk.
    assert status["origin"] == "loaded", status
    assert services.get_store().ids() == {*first, *later}  # the old one is reconciled with the database
    hits = services.search(user=alice, query="Which bird hunts at night?", top_k=1, collection="notes")
    assert hits[0].id == later[0]

    services.index_save()  # the next save clears what the killed one left behind
    manifest = services.get_store().read_manifest()
    assert saved_files(index_dir) == sorted([manifest["file"], MANIFEST_FILE])


@pytest.fixture
def full_disk_index(small_disk, settings):
    """EMBEDDINGS_DIR on a 64 KiB file system: an index of a few documents fits, one of fifty does not."""
    folder = small_disk("64k") / "embeddings"
    settings.EMBEDDINGS_DIR = folder  # resets the process-wide store
    return folder


MANY = [{"text": f"Note {i}: the meeting about topic {i} moved to room {i % 7}."} for i in range(50)]


def test_a_full_disk_fails_the_save_naming_the_disk_and_keeps_the_previous_index(
    full_disk_index, encoder, alice, staff_client, settings
):
    first = services.document_add(user=alice, documents=FIRST, collection="notes").ids
    manifest = (full_disk_index / MANIFEST_FILE).read_text()
    files = saved_files(full_disk_index)

    # Adding documents still works: the index in memory is right, and the failed autosave is logged.
    settings.EMBEDDINGS_AUTOSAVE = True
    many = services.document_add(user=alice, documents=MANY, collection="notes").ids
    assert len(services.get_store()) == len(first) + len(many)
    ready, detail = index_check()  # still ready, and says what is wrong
    assert ready and f"no space left on the device holding {full_disk_index}" in detail

    response = staff_client.post("/api/v1/embed/save")
    assert response.status_code == 507, response.content
    error = response.json()["error"]
    assert "no space left" in error["message"].lower() and str(full_disk_index) in error["message"]

    with pytest.raises(CommandError, match=f"no space left on the device holding {full_disk_index}"):
        call_command("rebuild_index", "--no-progress")

    # The previous index is untouched and nothing half-written stays.
    assert (full_disk_index / MANIFEST_FILE).read_text() == manifest
    assert saved_files(full_disk_index) == files
    # A restart on the full disk loads it and serves; the repaired index stays in memory until a save fits.
    services.reset_store()
    services.get_store()
    assert services.store_status()["origin"] == "loaded"
    hits = services.search(user=alice, query="Where did the meeting about topic 12 move?", top_k=1)
    assert hits[0].id == many[12]
