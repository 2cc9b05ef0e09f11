"""The admin's model pool page: every callable model in a table; Load and Unload go through the pool services."""

from __future__ import annotations

import re

import pytest

from inference.engine import get_engine

pytestmark = pytest.mark.django_db

POOL = "/admin/inference/providerconfig/pool/"


@pytest.fixture
def pool_settings(tiny_settings):
    """tiny-a (the default) and tiny-b served in this process, so that loading one takes a moment."""
    tiny_settings.LLM_RUNNER = "inline"
    return tiny_settings


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # PBKDF2 would be most of the time


@pytest.fixture
def admin_client(client, staff):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    return client


def row_of(page: str, model: str) -> str:
    """The table row of `model` on the pool page."""
    match = re.search(rf'<tr data-model="{re.escape(model)}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {model}"
    return match.group(1)


def loaded() -> set[str]:
    return {mid for mid, row in get_engine().pool_state().items() if row["state"] == "loaded"}


def test_the_providers_list_links_to_the_pool_which_lists_every_model(admin_client, pool_settings):
    listing = admin_client.get("/admin/inference/providerconfig/").content.decode()
    assert f'href="{POOL}"' in listing

    page = admin_client.get(POOL).content.decode()
    rows = re.findall(r'<tr data-model="([^"]+)">', page)
    # The default first; other tests may add model folders to the shared tiny MODELS_DIR.
    assert rows[0] == "tiny-a" and [m for m in rows if m in ("tiny-a", "tiny-b")] == ["tiny-a", "tiny-b"]
    assert 'alt="default"' in row_of(page, "tiny-a")
    assert 'alt="default"' not in row_of(page, "tiny-b")
    assert '<td class="state">idle</td>' in row_of(page, "tiny-b")
    assert 'value="load"' in row_of(page, "tiny-b")
    embedding = row_of(page, pool_settings.EMBEDDING_MODEL)
    assert "<td>embedding</td>" in embedding and "<form" not in embedding  # not a pool model: no buttons


def test_load_and_unload_go_through_the_pool_with_a_message(admin_client, pool_settings):
    response = admin_client.post(POOL, {"model": "tiny-b", "action": "load"}, follow=True)
    assert response.redirect_chain == [(POOL, 302)]
    assert "Loaded tiny-b." in [str(m) for m in response.context["messages"]]
    assert loaded() == {"tiny-b"}
    row = row_of(response.content.decode(), "tiny-b")
    assert '<td class="state">loaded</td>' in row
    assert 'value="unload"' in row

    response = admin_client.post(POOL, {"model": "tiny-b", "action": "unload"}, follow=True)
    assert "Unloaded tiny-b." in [str(m) for m in response.context["messages"]]
    assert loaded() == set()
    assert '<td class="state">idle</td>' in row_of(response.content.decode(), "tiny-b")


def test_a_failure_is_a_message_and_changes_nothing(admin_client, pool_settings):
    response = admin_client.post(POOL, {"model": "no-such-model", "action": "load"}, follow=True)
    [message] = response.context["messages"]
    assert message.level_tag == "error"
    assert str(message).startswith("Could not load no-such-model:")
    assert loaded() == set()


def test_only_staff_who_may_change_providers_load_and_unload(client, staff, alice, pool_settings):
    client.force_login(alice)
    assert client.get(POOL).status_code == 302  # not staff: the admin's login page
    client.force_login(staff)  # staff, but no permission on provider configurations
    assert client.get(POOL).status_code == 403
    assert client.post(POOL, {"model": "tiny-b", "action": "load"}).status_code == 403
    assert loaded() == set()


def test_the_buttons_need_the_csrf_token(staff, pool_settings):
    from django.test import Client

    staff.is_superuser = True
    staff.save()
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(POOL, {"model": "tiny-b", "action": "load"}).status_code == 403
    assert loaded() == set()
