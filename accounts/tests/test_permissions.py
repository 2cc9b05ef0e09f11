import pytest
from django.http import Http404
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import ApiKey
from accounts.permissions import IsStaff, get_owned_or_404

pytestmark = pytest.mark.django_db


class SiteChangingApi(APIView):
    permission_classes = [IsStaff]

    def post(self, request):
        return Response({"changed": True})


urlpatterns = [path("api/site", SiteChangingApi.as_view())]


def test_staff_only_operations_refuse_non_staff_with_403(api_client, settings, alice):
    settings.ROOT_URLCONF = __name__
    api_client.force_authenticate(alice)
    response = api_client.post("/api/site")
    assert response.status_code == 403
    assert response.json()["error"] == {"code": "permission_denied", "message": "Only staff can do this."}


def test_staff_only_operations_let_staff_through(api_client, settings, staff):
    settings.ROOT_URLCONF = __name__
    api_client.force_authenticate(staff)
    assert api_client.post("/api/site").json() == {"changed": True}


def test_staff_only_operations_ask_anonymous_callers_to_authenticate(api_client, settings):
    settings.ROOT_URLCONF = __name__
    assert api_client.post("/api/site").status_code == 401


def test_get_owned_or_404_hides_other_users_objects(alice, bob):
    bobs_key, _ = services.api_key_create(user=bob)
    assert get_owned_or_404(ApiKey.objects.all(), bob, pk=bobs_key.pk) == bobs_key
    with pytest.raises(Http404):
        get_owned_or_404(ApiKey.objects.all(), alice, pk=bobs_key.pk)
    with pytest.raises(Http404):
        get_owned_or_404(ApiKey.objects.all(), alice, pk="not-a-number")


def test_get_owned_or_404_lets_staff_through_only_when_asked(staff, bob):
    bobs_key, _ = services.api_key_create(user=bob)
    with pytest.raises(Http404):
        get_owned_or_404(ApiKey.objects.all(), staff, pk=bobs_key.pk)
    assert get_owned_or_404(ApiKey.objects.all(), staff, allow_staff=True, pk=bobs_key.pk) == bobs_key
