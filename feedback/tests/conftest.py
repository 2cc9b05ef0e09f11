"""Feedback fixtures: logged-in clients and a conversation with an answer to rate."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from inference import conversations
from inference.providers.base import Usage
from inference.services import CompletionResult


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # alice, bob and the admin get real passwords; PBKDF2 would be most of these tests' run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def alice_client(alice):
    return client_for(alice)


@pytest.fixture
def bob_client(bob):
    return client_for(bob)


@pytest.fixture
def staff_client(staff):
    return client_for(staff)


def result(text: str, *, model: str = "tiny-a", provider: str = "hf") -> CompletionResult:
    return CompletionResult(
        id="cmpl-feedc0de",
        text=text,
        provider=provider,
        model=model,
        usage=Usage(prompt_tokens=10, completion_tokens=4),
        cached=False,
        latency_ms=3.0,
        ttft_ms=1.0,
        finish_reason="stop",
    )


@pytest.fixture
def chat_answer():
    """chat_answer(user, prompt, text, system=None) -> the assistant Message of a new conversation."""

    def make(user, prompt: str = "What is 2+2?", text: str = "4", *, system: str | None = None, model: str = "tiny-a"):
        seed = [{"role": "system", "content": system}] if system else None
        chat = conversations.conversation_create(user=user, messages=seed)
        return conversations.record_exchange(conversation=chat, prompt=prompt, result=result(text, model=model))

    return make
