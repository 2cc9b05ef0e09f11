"""The admin: runs with their loss per epoch, read-only; cancel and serve actions."""

from __future__ import annotations

import pytest

from training.models import EpochMetric, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "correct-horse-battery")
    client.force_login(user)
    return client


@pytest.fixture
def finished_run():
    run = TrainingRun.objects.create(
        name="tuned", base_model="tiny-base", status="succeeded", eval_loss_before=3.2, eval_loss_after=2.5, step=6
    )
    for epoch, (train, evaluation) in enumerate([(3.0, 2.8), (2.6, 2.5)], start=1):
        EpochMetric.objects.create(
            run=run, epoch=epoch, step=3 * epoch, train_loss=train, eval_loss=evaluation, learning_rate=1e-4,
            tokens_per_second=100.0, seconds=10.0 * epoch,
        )  # fmt: skip
    return run


def test_the_list_shows_the_loss_of_every_epoch(admin_client, finished_run):
    page = admin_client.get("/admin/training/trainingrun/").content.decode()
    assert "1: 3.000 → 2.8000 | 2: 2.600 → 2.5000" in page
    assert "3.2000" in page and "2.5000" in page


def test_the_detail_page_is_a_read_only_record_with_a_loss_table(admin_client, finished_run):
    response = admin_client.get(f"/admin/training/trainingrun/{finished_run.pk}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<th>train loss</th>" in page and "<td>2.6000</td>" in page
    assert 'name="_save"' not in page  # nothing to edit
    assert admin_client.get("/admin/training/trainingrun/add/").status_code == 403
    assert admin_client.get("/admin/training/epochmetric/").status_code == 200


def test_the_cancel_action_cancels_queued_runs_and_reports_finished_ones(admin_client, finished_run):
    queued = TrainingRun.objects.create(name="later", base_model="tiny-base")
    response = admin_client.post(
        "/admin/training/trainingrun/",
        {"action": "cancel_runs", "_selected_action": [queued.pk, finished_run.pk]},
        follow=True,
    )
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert "has already finished (succeeded)" in response.content.decode()


def test_a_run_shows_its_job_and_the_jobs_state_linked_to_the_job(admin_client, finished_run, training_settings):
    from training import services
    from training.tests.conftest import FAST

    run = services.run_start(name="waiting", **FAST)
    listing = admin_client.get("/admin/training/trainingrun/").content.decode()
    job_page = f"/admin/django_tasks_database/dbtaskresult/{run.task_id}/change/"
    assert f'<a href="{job_page}">READY</a>' in listing
    assert admin_client.get(job_page).status_code == 200
    detail = admin_client.get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode()
    assert f'<a href="{job_page}">READY</a>' in detail
    assert admin_client.get("/admin/jobs/jobworker/").status_code == 200
    assert admin_client.get("/admin/jobs/schedule/").status_code == 200
