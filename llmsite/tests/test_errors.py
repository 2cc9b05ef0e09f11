import pytest
from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from llmsite.errors import ApplicationError

pytestmark = pytest.mark.django_db


class EchoApi(APIView):
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        count = serializers.IntegerField(min_value=1, max_value=5)

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["count"] == 5:
            raise ApplicationError("five is reserved", code="reserved", field="count", status=409)
        return Response(data.validated_data)


def crash(request):
    raise ZeroDivisionError("secret internal detail")


urlpatterns = [
    path("api/echo", EchoApi.as_view()),
    path("v1/echo", EchoApi.as_view()),
    path("api/crash", crash),
]


def test_it_answers_unknown_api_paths_with_json_404(client):
    response = client.get("/api/v1/does-not-exist")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_it_renders_validation_errors_with_the_field(client, settings):
    settings.ROOT_URLCONF = __name__
    response = client.post("/api/echo", {"count": 9}, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["field"] == "count"
    assert "less than or equal to 5" in error["message"]


def test_it_renders_application_errors_with_their_status(client, settings):
    settings.ROOT_URLCONF = __name__
    response = client.post("/api/echo", {"count": 5}, content_type="application/json")
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "reserved", "message": "five is reserved", "field": "count"}}


def test_it_uses_openai_error_shape_under_v1(client, settings):
    settings.ROOT_URLCONF = __name__
    response = client.post("/v1/echo", {"count": 0}, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "count"
    assert set(error) == {"message", "type", "param", "code"}


def test_it_rejects_malformed_json_with_a_clear_400(client, settings):
    settings.ROOT_URLCONF = __name__
    response = client.post("/api/echo", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["error"]["message"]


def test_it_hides_server_errors_behind_json(settings):
    from django.test import Client

    settings.ROOT_URLCONF = __name__
    response = Client(raise_request_exception=False).get("/api/crash")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert "secret internal detail" not in response.content.decode()
    assert response.json()["error"]["code"] == "server_error"


def test_it_answers_wrong_methods_with_json_405(client):
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_pages_keep_html_404s(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "application/json" not in response["Content-Type"]
