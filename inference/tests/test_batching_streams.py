"""The streaming suite (SSE and the chat WebSocket) again, served by the batching provider.

Every test of test_streaming.py runs here with `serving` pinned to a provider whose requests go
through the continuous-batching scheduler: cancellation, disconnects, interleaving and errors
must behave the same.
"""

from __future__ import annotations

import pytest

from inference.engine import get_engine
from inference.providers.hf import HFProvider
from inference.tests.test_streaming import *  # noqa: F403 - the same tests, another provider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def batched_provider(tiny_models_dir):
    provider = HFProvider("tiny-a", tiny_models_dir / "tiny-a", device="cpu", batching=True)
    provider.load()
    assert provider.scheduler is not None
    yield provider
    provider.close()


@pytest.fixture
def serving(batched_provider):
    get_engine().set(batched_provider)
    return batched_provider
