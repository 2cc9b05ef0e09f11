import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey
from accounts.tests.conftest import bearer

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(api_client, alice):
    api_client.force_authenticate(alice)
    return api_client


def test_it_creates_a_key_shown_once_and_stored_hashed(alice_client, alice):
    response = alice_client.post("/api/v1/auth/keys", {"name": "laptop"}, format="json")
    assert response.status_code == 201
    body = response.json()
    secret = body["key"]
    assert secret.startswith("llms_")
    assert body["prefix"] == "_".join(secret.split("_")[:2]) + "_…"
    stored = ApiKey.objects.get(pk=body["id"])
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in [getattr(stored, f.attname) for f in ApiKey._meta.concrete_fields]

    listed = alice_client.get("/api/v1/auth/keys").json()
    assert [k["name"] for k in listed] == ["laptop"]
    assert "key" not in listed[0]


def test_a_key_authenticates_like_a_jwt_and_records_its_use(api_client, alice):
    api_key, secret = services.api_key_create(user=alice, name="script")
    assert api_key.last_used_at is None
    response = api_client.get("/api/v1/auth/me", **bearer(secret))
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_a_revoked_key_is_refused(api_client, alice):
    api_key, secret = services.api_key_create(user=alice)
    client = api_client
    client.force_authenticate(alice)
    assert client.delete(f"/api/v1/auth/keys/{api_key.pk}").status_code == 204
    client.force_authenticate(None)
    response = client.get("/api/v1/auth/me", **bearer(secret))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_revoked"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_an_expired_key_is_refused(api_client, alice):
    api_key, secret = services.api_key_create(user=alice, expires_at=timezone.now() + timedelta(days=1))
    assert api_client.get("/api/v1/auth/me", **bearer(secret)).status_code == 200
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api_client.get("/api/v1/auth/me", **bearer(secret))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_expired"


def test_a_wrong_secret_with_a_real_prefix_is_refused(api_client, alice):
    _api_key, secret = services.api_key_create(user=alice)
    response = api_client.get("/api/v1/auth/me", **bearer(secret[:-4] + "AAAA"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_invalid"


def test_it_accepts_an_expiry_in_days(alice_client):
    body = alice_client.post("/api/v1/auth/keys", {"expires_in_days": 30}, format="json").json()
    assert body["expires_at"] is not None
    past = alice_client.post("/api/v1/auth/keys", {"expires_at": "2000-01-01T00:00:00Z"}, format="json")
    assert past.status_code == 400
    assert past.json()["error"]["field"] == "expires_at"


def test_a_user_cannot_see_or_revoke_another_users_key(api_client, alice, bob):
    bobs_key, _ = services.api_key_create(user=bob, name="bob's")
    api_client.force_authenticate(alice)
    assert api_client.get("/api/v1/auth/keys").json() == []
    response = api_client.delete(f"/api/v1/auth/keys/{bobs_key.pk}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    bobs_key.refresh_from_db()
    assert bobs_key.revoked_at is None
    assert api_client.delete("/api/v1/auth/keys/999999").status_code == 404


def test_an_api_key_cannot_create_api_keys(api_client, alice):
    _api_key, secret = services.api_key_create(user=alice)
    response = api_client.post("/api/v1/auth/keys", {"name": "more"}, format="json", **bearer(secret))
    assert response.status_code == 403


def test_user_for_bearer_token_takes_jwts_and_keys(alice, tokens_for):
    _api_key, secret = services.api_key_create(user=alice)
    access = tokens_for("alice")["access"]
    assert services.user_for_bearer_token(secret) == alice
    assert services.user_for_bearer_token(access) == alice
    assert services.user_for_bearer_token(f"Bearer {access}") == alice
    assert services.user_for_bearer_token("garbage") is None
    assert services.user_for_bearer_token("llms_nope_nope") is None
    assert services.user_for_bearer_token("") is None


@pytest.mark.django_db(transaction=True)  # the lookup runs in a worker thread, on its own connection
async def test_auser_for_bearer_token_works_from_async_code(alice):
    _api_key, secret = await sync_to_async(services.api_key_create)(user=alice)
    assert await services.auser_for_bearer_token(secret) == alice


def test_createapikey_prints_the_secret_once(alice):
    out, err = StringIO(), StringIO()
    call_command("createapikey", "alice", "--name", "ci", "--expires-days", "7", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    assert services.user_for_bearer_token(secret) == alice
    api_key = ApiKey.objects.get(user=alice)
    assert api_key.name == "ci"
    assert api_key.expires_at is not None
    assert api_key.display_prefix in err.getvalue()
    with pytest.raises(CommandError, match="No user named"):
        call_command("createapikey", "nobody")


def test_the_admin_lists_keys_without_secrets(client, staff, alice):
    staff.is_superuser = True
    staff.save()
    api_key, secret = services.api_key_create(user=alice, name="visible-name")
    client.force_login(staff)
    page = client.get("/admin/accounts/apikey/").content.decode()
    assert "visible-name" in page
    assert api_key.prefix in page
    assert secret not in page
    assert api_key.secret_hash not in page
    change = client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()
    assert api_key.secret_hash not in change
    assert client.get(f"/admin/auth/user/{alice.pk}/change/").status_code == 200
