"""TRAINING_MAX_ACTIVE_RUNS holds when many starts race (PostgreSQL's READ COMMITTED included)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from training import services
from training.models import TrainingRun
from training.tests.conftest import FAST

STARTERS = 8


@pytest.mark.django_db(transaction=True)  # each starter thread commits through a connection of its own
def test_concurrent_starts_never_pass_the_active_run_limit(training_settings):
    training_settings.TRAINING_MAX_ACTIVE_RUNS = 2
    barrier = threading.Barrier(STARTERS)
    outcomes: list[str] = []

    def start(i: int) -> None:
        try:
            barrier.wait(timeout=60)  # every starter counts the active runs at about the same moment
            services.run_start(name=f"race-{i}", **FAST)
            outcomes.append("created")
        except services.Conflict as exc:
            outcomes.append("refused" if "TRAINING_MAX_ACTIVE_RUNS" in exc.message else exc.message)
        finally:
            connection.close()

    starters = [threading.Thread(target=start, args=(i,)) for i in range(STARTERS)]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join(timeout=120)
    assert sorted(outcomes) == ["created"] * 2 + ["refused"] * (STARTERS - 2)
    assert TrainingRun.objects.filter(status__in=TrainingRun.ACTIVE).count() == 2
    # A refused start leaves no job behind: the run and its job are written together or not at all.
    assert sorted(DBTaskResult.objects.values_list("id", flat=True)) == sorted(
        TrainingRun.objects.values_list("task_id", flat=True)
    )
