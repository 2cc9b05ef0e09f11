"""The evaluation pages: staff only, shells the script fills from the API."""

from __future__ import annotations

import pytest

from evaluation.models import Evaluation

pytestmark = pytest.mark.django_db


def test_staff_see_the_list_and_an_evaluation(client, staff):
    evaluation = Evaluation.objects.create(model="tiny-b", baseline="tiny-a")
    client.force_login(staff)
    listing = client.get("/evaluations/")
    assert listing.status_code == 200
    assert b'data-api-url="/api/v1/evaluations"' in listing.content
    page = client.get(f"/evaluations/{evaluation.pk}/")
    assert page.status_code == 200
    assert f'data-api-url="/api/v1/evaluations/{evaluation.pk}"'.encode() in page.content
    assert b'data-promote-url="/api/v1/models/tiny-b/promote"' in page.content
    assert b"<script>" not in page.content  # no inline script under the Content-Security-Policy


def test_others_are_refused_and_unknown_evaluations_are_404(client, alice, staff):
    assert client.get("/evaluations/").status_code == 302  # to the login page
    client.force_login(alice)
    assert client.get("/evaluations/").status_code == 403
    client.force_login(staff)
    assert client.get("/evaluations/999/").status_code == 404
