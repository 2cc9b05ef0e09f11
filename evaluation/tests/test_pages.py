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


def test_the_admin_shows_evaluations_with_their_examples_and_the_log_read_only(client, staff):
    from evaluation.models import EvaluationExample, Promotion

    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    evaluation = Evaluation.objects.create(model="tiny-b", baseline="tiny-a", status="succeeded")
    EvaluationExample.objects.create(
        evaluation=evaluation, kind="qa", index=0, model="tiny-b", answer="the answer text"
    )
    Promotion.objects.create(
        kind="promote", model="tiny-b", provider="hf", previous_provider="hf", previous_model="tiny-a"
    )
    assert client.get("/admin/evaluation/evaluation/").status_code == 200
    page = client.get(f"/admin/evaluation/evaluation/{evaluation.pk}/change/")
    assert page.status_code == 200 and b"the answer text" in page.content
    assert client.get("/admin/evaluation/promotion/").status_code == 200
    assert client.get("/admin/evaluation/evaluation/add/").status_code == 403
    assert client.get("/admin/evaluation/promotion/add/").status_code == 403
