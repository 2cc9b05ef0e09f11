import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.http import JsonResponse
from django.test import Client
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.ratelimits import RateLimited, acheck_rate_limit, ratelimit_api
from accounts.tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_ratelimit_clock")]


class ExpensiveApi(APIView):
    @ratelimit_api(group="feedback")
    def post(self, request):
        return Response({"ok": True})


class OpenExpensiveApi(ExpensiveApi):
    permission_classes = [AllowAny]


async def async_view(request):
    try:
        await acheck_rate_limit(request, "chat", "2/m")
    except RateLimited as exc:
        return exc.as_response(request)
    return JsonResponse({"ok": True})


urlpatterns = [
    path("api/expensive", ExpensiveApi.as_view()),
    path("v1/expensive", ExpensiveApi.as_view()),
    path("api/open", OpenExpensiveApi.as_view()),
    path("api/async", async_view),
]


def hit(client, url="/api/expensive", times=1):
    return [client.post(url).status_code for _ in range(times)]


def test_the_31st_request_within_a_minute_at_30_per_minute_is_429(api_client, settings, alice):
    settings.ROOT_URLCONF = __name__
    settings.RATELIMIT_FEEDBACK = "30/m"
    api_client.force_authenticate(alice)
    assert hit(api_client, times=30) == [200] * 30
    response = api_client.post("/api/expensive")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert "30/m for feedback" in error["message"]


def test_the_rate_comes_from_settings_at_call_time(api_client, settings, alice):
    settings.ROOT_URLCONF = __name__
    settings.RATELIMIT_FEEDBACK = "3/m"
    api_client.force_authenticate(alice)
    assert hit(api_client, times=4) == [200, 200, 200, 429]


def test_limits_are_per_user(api_client, settings, alice, bob):
    settings.ROOT_URLCONF = __name__
    settings.RATELIMIT_FEEDBACK = "2/m"
    api_client.force_authenticate(alice)
    assert hit(api_client, times=3) == [200, 200, 429]
    api_client.force_authenticate(bob)
    assert hit(api_client, times=1) == [200]


def test_anonymous_calls_are_limited_per_client_ip(settings):
    settings.ROOT_URLCONF = __name__
    settings.RATELIMIT_FEEDBACK = "1/m"
    assert Client(REMOTE_ADDR="10.0.0.1").post("/api/open").status_code == 200
    assert Client(REMOTE_ADDR="10.0.0.1").post("/api/open").status_code == 429
    assert Client(REMOTE_ADDR="10.0.0.2").post("/api/open").status_code == 200


def test_it_uses_openai_error_shape_under_v1(api_client, settings, alice):
    settings.ROOT_URLCONF = __name__
    settings.RATELIMIT_FEEDBACK = "1/m"
    api_client.force_authenticate(alice)
    hit(api_client, "/v1/expensive")
    response = api_client.post("/v1/expensive")
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert "Retry-After" in response


async def test_async_views_can_check_a_rate(async_client, settings):
    settings.ROOT_URLCONF = __name__
    codes = [(await async_client.post("/api/async")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    response = await async_client.post("/api/async")
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) >= 1


def test_token_attempts_are_limited_per_username(settings, alice):
    settings.RATELIMIT_LOGIN = "3/m"
    codes = [
        Client(REMOTE_ADDR=f"10.0.1.{i}")
        .post("/api/v1/auth/token", {"username": "alice", "password": "wrong"}, content_type="application/json")
        .status_code
        for i in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    # The right password does not get through either until the window passes.
    response = Client(REMOTE_ADDR="10.0.1.9").post(
        "/api/v1/auth/token", {"username": "ALICE", "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 429
    assert "Retry-After" in response


def test_token_attempts_are_limited_per_client_ip(api_client, settings, alice):
    settings.RATELIMIT_LOGIN = "2/m"
    codes = [
        api_client.post("/api/v1/auth/token", {"username": f"user{i}", "password": "x"}, format="json").status_code
        for i in range(3)
    ]
    assert codes == [401, 401, 429]


def test_session_login_attempts_are_limited(client, settings, alice):
    settings.RATELIMIT_LOGIN = "2/m"
    for _ in range(2):
        assert client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert int(response["Retry-After"]) >= 1
    assert "_auth_user_id" not in client.session


def test_registration_is_limited_per_client_ip(api_client, settings):
    settings.RATELIMIT_LOGIN = "1/m"
    first = api_client.post("/api/v1/auth/register", {"username": "erin", "password": PASSWORD}, format="json")
    second = api_client.post("/api/v1/auth/register", {"username": "frank", "password": PASSWORD}, format="json")
    assert (first.status_code, second.status_code) == (201, 429)


def test_a_malformed_rate_is_a_system_check_error(settings):
    settings.RATELIMIT_FEEDBACK = "sixty a minute"
    with pytest.raises(SystemCheckError, match=r"accounts\.E001"):
        call_command("check")


def test_admin_login_attempts_are_limited(client, settings, staff):
    settings.RATELIMIT_LOGIN = "1/m"
    client.post("/admin/login/", {"username": "sam", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "sam", "password": PASSWORD})
    assert response.status_code == 429
    assert "Retry-After" in response
