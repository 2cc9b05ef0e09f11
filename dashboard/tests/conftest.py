"""Dashboard fixtures: a recorder without its thread (tests flush it), clients for each kind of caller."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from dashboard import services
from dashboard.models import RequestMetric
from dashboard.recorder import Recorder


@pytest.fixture(autouse=True)
def recorder():
    """Samples stay in memory until the test calls `recorder.flush()`; no background writes."""
    fresh = Recorder(services.request_metrics_write, interval=60, batch_size=100, max_buffer=10_000, background=False)
    old = services.set_recorder(fresh)
    yield fresh
    services.set_recorder(old)


@pytest.fixture
def staff_client(staff) -> APIClient:
    client = APIClient()
    client.force_login(staff)
    return client


@pytest.fixture
def alice_client(alice) -> APIClient:
    client = APIClient()
    client.force_login(alice)
    return client


def rows() -> list[tuple[str, str, int]]:
    return sorted(RequestMetric.objects.values_list("endpoint", "method", "status"))
