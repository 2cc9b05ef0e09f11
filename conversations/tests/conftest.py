"""Conversation fixtures: logged-in clients for alice and bob, and an exchange written as inference writes it."""

from __future__ import annotations

import pytest

from conversations.models import Conversation, Message
from conversations.services import exchange_append


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The users get real passwords; PBKDF2 would be most of these tests' run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def append(conversation: Conversation, prompt: str, text: str = "Hi there.", **fields) -> Message:
    """One user turn and its answer appended through `exchange_append`, with an answer's usual plain data."""
    values = {
        "provider": "hf",
        "model": "tiny-a",
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "finish_reason": "stop",
        "completion_id": "cmpl-0123abcd",
    } | fields
    return exchange_append(
        conversation=conversation, turns=[{"role": "user", "content": prompt}], answer=text, **values
    )
