import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.conftest import PASSWORD, bearer

pytestmark = pytest.mark.django_db


def test_it_registers_then_issues_tokens_then_says_who_i_am(api_client):
    response = api_client.post(
        "/api/v1/auth/register", {"username": "carol", "password": PASSWORD, "email": "c@example.com"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "carol"
    assert set(body) == {"id", "username"}

    tokens = api_client.post("/api/v1/auth/token", {"username": "carol", "password": PASSWORD}, format="json").json()
    assert set(tokens) == {"access", "refresh"}

    me = api_client.get("/api/v1/auth/me", **bearer(tokens["access"]))
    assert me.status_code == 200
    assert me.json() == {"id": body["id"], "username": "carol", "email": "c@example.com", "is_staff": False}


def test_it_refuses_a_taken_username_with_a_clear_400(api_client, alice):
    response = api_client.post("/api/v1/auth/register", {"username": "Alice", "password": PASSWORD}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "username_taken"
    assert error["field"] == "username"
    assert "already taken" in error["message"]


def test_it_applies_the_password_validators(api_client):
    response = api_client.post("/api/v1/auth/register", {"username": "dave", "password": "12345678"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "password"
    assert "too common" in error["message"]


def test_it_refuses_wrong_credentials_with_401(api_client, alice):
    response = api_client.post("/api/v1/auth/token", {"username": "alice", "password": "wrong"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "no_active_account"


def test_it_says_who_is_staff(api_client, staff, tokens_for):
    me = api_client.get("/api/v1/auth/me", **bearer(tokens_for("sam")["access"]))
    assert me.json()["is_staff"] is True


def test_it_rotates_refresh_tokens_and_refuses_the_old_one(api_client, alice, tokens_for):
    first = tokens_for("alice")
    response = api_client.post("/api/v1/auth/token/refresh", {"refresh": first["refresh"]}, format="json")
    assert response.status_code == 200
    second = response.json()
    assert second["refresh"] != first["refresh"]
    assert api_client.get("/api/v1/auth/me", **bearer(second["access"])).status_code == 200

    again = api_client.post("/api/v1/auth/token/refresh", {"refresh": first["refresh"]}, format="json")
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "token_not_valid"
    assert again["WWW-Authenticate"].startswith("Bearer")


def test_logout_blacklists_the_refresh_token(api_client, alice, tokens_for):
    tokens = tokens_for("alice")
    response = api_client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 205
    refused = api_client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refused.status_code == 401
    assert api_client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code == 401


def test_logout_refuses_garbage_with_401(api_client):
    response = api_client.post("/api/v1/auth/logout", {"refresh": "not-a-token"}, format="json")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    assert api_client.post("/api/v1/auth/logout", {}, format="json").status_code == 400


def test_it_refuses_an_expired_access_token(api_client, alice):
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=timedelta(seconds=-1))
    response = api_client.get("/api/v1/auth/me", **bearer(str(token)))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json()["error"] == {"code": "token_not_valid", "message": "The access token is invalid or expired."}


def test_it_refuses_a_tampered_access_token(api_client, alice, bob):
    header, payload, signature = str(AccessToken.for_user(alice)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["user_id"] = str(bob.pk)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = api_client.get("/api/v1/auth/me", **bearer(f"{header}.{forged}.{signature}"))
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_it_refuses_tokens_signed_with_the_django_secret_key(api_client, alice):
    assert settings.SIMPLE_JWT["SIGNING_KEY"] != settings.SECRET_KEY
    claims = {"token_type": "access", "user_id": str(alice.pk), "jti": "x", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, settings.SECRET_KEY, algorithm="HS256")
    assert api_client.get("/api/v1/auth/me", **bearer(token)).status_code == 401


def test_it_refuses_a_refresh_token_as_bearer(api_client, alice, tokens_for):
    response = api_client.get("/api/v1/auth/me", **bearer(tokens_for("alice")["refresh"]))
    assert response.status_code == 401


def test_a_password_change_revokes_access_tokens(api_client, alice, tokens_for):
    access = tokens_for("alice")["access"]
    alice.set_password("another-long-passphrase")
    alice.save()
    assert api_client.get("/api/v1/auth/me", **bearer(access)).status_code == 401


def test_an_inactive_user_is_refused(api_client, alice, tokens_for):
    access = tokens_for("alice")["access"]
    alice.is_active = False
    alice.save()
    assert api_client.get("/api/v1/auth/me", **bearer(access)).status_code == 401


def test_anonymous_calls_get_401_with_www_authenticate(api_client):
    response = api_client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_malformed_authorization_header_is_401(api_client):
    response = APIClient().get("/api/v1/auth/me", HTTP_AUTHORIZATION="Bearer two parts")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_authorization_header"


def test_access_tokens_live_at_most_15_minutes():
    assert settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] <= timedelta(minutes=15)
    assert settings.SIMPLE_JWT["ROTATE_REFRESH_TOKENS"] and settings.SIMPLE_JWT["BLACKLIST_AFTER_ROTATION"]
