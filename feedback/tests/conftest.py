"""Feedback fixtures: logged-in clients and a conversation with an answer to rate."""

from __future__ import annotations

import pytest

from conversations.models import Conversation, Message
from conversations.services import conversation_create, exchange_append


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # alice, bob and the admin get real passwords; PBKDF2 would be most of these tests' run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def answer_to(
    conversation: Conversation, prompt: str, text: str, *, model: str = "tiny-a", provider: str = "hf"
) -> Message:
    """Append `prompt` and the model's answer `text` to the conversation; the assistant Message."""
    return exchange_append(
        conversation=conversation,
        turns=[{"role": "user", "content": prompt}],
        answer=text,
        provider=provider,
        model=model,
        prompt_tokens=10,
        completion_tokens=4,
        finish_reason="stop",
        completion_id="cmpl-feedc0de",
    )


@pytest.fixture
def chat_answer():
    """chat_answer(user, prompt, text, system=None) -> the assistant Message of a new conversation."""

    def make(user, prompt: str = "What is 2+2?", text: str = "4", *, system: str | None = None, model: str = "tiny-a"):
        seed = [{"role": "system", "content": system}] if system else None
        return answer_to(conversation_create(user=user, messages=seed), prompt, text, model=model)

    return make
