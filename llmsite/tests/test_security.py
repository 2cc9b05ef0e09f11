"""The security checklist (docs/security.md), item by item: what an attacker tries, what the site answers."""

from __future__ import annotations

import base64
import json

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.services import api_key_create
from conversations.models import Conversation
from embeddings.models import Collection, Document

pytestmark = pytest.mark.django_db

PASSWORD = "a long pass phrase"


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# --- API1 broken object level authorisation: another user's ids look like missing ones ----------
def test_another_users_objects_are_404_on_every_object_endpoint(alice, bob_client):
    conversation = Conversation.objects.create(user=alice, title="secret words")
    key, _secret = api_key_create(user=alice, name="private")
    collection = Collection.objects.create(owner=alice, name="private")
    document = Document.objects.create(owner=alice, collection=collection, text="secret words", content_hash="0" * 64)
    for method, url in [
        ("get", f"/api/v1/conversations/{conversation.pk}"),
        ("patch", f"/api/v1/conversations/{conversation.pk}"),
        ("delete", f"/api/v1/conversations/{conversation.pk}"),
        ("delete", f"/api/v1/auth/keys/{key.pk}"),
        ("delete", f"/api/v1/embed/documents/{document.pk}"),
        ("get", "/api/v1/embed/collections/private/documents"),
        ("get", f"/api/v1/embed/collections/private/documents?owner={alice.username}"),
    ]:
        response = getattr(bob_client, method)(url, {"title": "mine"} if method == "patch" else None, format="json")
        assert response.status_code == 404, (method, url, response.status_code)  # never 403: nothing to learn
        assert "secret words" not in response.content.decode()
    assert Conversation.objects.get(pk=conversation.pk).title == "secret words"
    assert Document.objects.filter(pk=document.pk).exists()
    search = bob_client.post("/api/v1/embed/search", {"query": "private", "collection": "private"}, format="json")
    assert search.status_code == 404
    answer = bob_client.post("/api/v1/predict", {"prompt": "hi", "conversation": conversation.pk}, format="json")
    assert answer.status_code == 404
    usage = bob_client.get("/api/v1/usage", {"user": alice.pk})
    assert usage.status_code == 403


# --- API3 mass assignment: registration ignores what it does not declare ------------------------
def test_registration_cannot_make_a_staff_member_or_pick_an_id(api_client, django_user_model):
    body = {"username": "mallory", "password": PASSWORD, "is_staff": True, "is_superuser": True, "id": 1}
    response = api_client.post("/api/v1/auth/register", body, format="json")
    assert response.status_code in (201, 400)
    if response.status_code == 201:
        user = django_user_model.objects.get(username="mallory")
        assert not user.is_staff and not user.is_superuser
        assert response.json()["id"] == user.pk


def test_the_profile_is_read_only(alice_client):
    for method in ("put", "patch", "post", "delete"):
        assert getattr(alice_client, method)("/api/v1/auth/me", {"is_staff": True}, format="json").status_code == 405


# --- API2 broken authentication -------------------------------------------------------------------
def test_a_jwt_with_alg_none_is_refused(api_client, alice):
    genuine = AccessToken.for_user(alice)
    claims = dict(genuine.payload)
    forged = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    response = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401


def test_a_jwt_claiming_another_user_with_a_forged_signature_is_refused(api_client, alice, staff):
    header, payload, signature = str(AccessToken.for_user(alice)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["user_id"] = str(staff.pk)
    forged = f"{header}.{b64(claims)}.{signature}"
    assert api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {forged}").status_code == 401


def test_an_api_key_of_a_deactivated_user_is_refused(alice):
    _key, secret = api_key_create(user=alice)
    alice.is_active = False
    alice.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/auth/me").status_code == 401


# --- API5 broken function level authorisation: staff operations --------------------------------
@pytest.mark.parametrize(
    "method,url",
    [
        ("post", "/api/v1/providers/active"),
        ("delete", "/api/v1/cache"),
        ("post", "/api/v1/models/anything/load"),
        ("post", "/api/v1/embed/save"),
        ("post", "/api/v1/embed/load"),
        ("post", "/api/v1/training/runs"),
        ("put", "/api/v1/usage/limits/1"),
        ("get", "/api/v1/metrics"),
    ],
)
def test_staff_operations_refuse_users_and_any_api_key(alice_client, staff, method, url):
    assert getattr(alice_client, method)(url, {}, format="json").status_code == 403
    _key, secret = api_key_create(user=staff, scopes=["chat", "embeddings"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert getattr(client, method)(url, {}, format="json").status_code == 403


# --- path traversal: names that become paths ---------------------------------------------------
@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "/etc/passwd", "a/../../b", "..\\..\\x", "nul\x00byte"])
def test_a_name_that_would_leave_its_folder_is_refused(staff_client, name):
    load = staff_client.post(f"/api/v1/models/{name}/load")
    assert load.status_code in (400, 404), load.content
    run = staff_client.post("/api/v1/training/runs", {"name": name}, format="json")
    assert run.status_code == 400, run.content
    dataset = staff_client.post("/api/v1/training/runs", {"name": "ok-name", "datasets": [name]}, format="json")
    assert dataset.status_code == 400, dataset.content
    activate = staff_client.post("/api/v1/providers/active", {"provider": "hf", "model": name}, format="json")
    assert activate.status_code == 400, activate.content
    openai_model = staff_client.get(f"/v1/models/{name}")
    assert openai_model.status_code in (400, 404), openai_model.content
    predict = staff_client.post("/api/v1/predict", {"prompt": "hi", "model": name}, format="json")
    assert predict.status_code in (400, 404), predict.content
    collection = staff_client.post(
        "/api/v1/embed/add", {"documents": [{"text": "x"}], "collection": name}, format="json"
    )
    assert collection.status_code == 400, collection.content


# --- API4 unrestricted resource consumption: bodies ----------------------------------------------
def test_a_body_over_the_upload_limit_is_refused_before_it_is_parsed(alice_client, settings):
    huge = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = alice_client.post("/api/v1/predict", json.dumps({"prompt": huge}), content_type="application/json")
    assert response.status_code in (400, 413)
    assert response.json()["error"]["code"] in ("bad_request", "too_large")


# --- API8 security misconfiguration: headers on pages and API answers ----------------------------
@pytest.mark.parametrize("url", ["/api/v1/auth/me", "/healthz", "/accounts/login/", "/api/v1/nothing-here"])
def test_security_headers_are_on_every_response(alice_client, url):
    response = alice_client.get(url)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert "default-src" in response["Content-Security-Policy"]
