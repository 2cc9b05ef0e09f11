"""Moving Conversation and Message here from inference kept their rows: what was written before is there after."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations.models import Conversation, Message
from feedback.models import Feedback

# The leaves before the move, in every app it touches: conversations did not exist yet.
BEFORE = [("inference", "0002_conversations"), ("feedback", "0001_initial")]


def _migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh loader: it reads which migrations are applied now


def _latest() -> None:
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_it_keeps_conversations_messages_feedback_and_permissions_across_the_move():
    executor = _migrate([*BEFORE, ("conversations", None)])
    try:
        assert ("conversations", "0001_initial") not in executor.loader.applied_migrations
        graph = executor.loader.graph
        # auth and contenttypes as they are now (the move does not touch them), the rest as before the move.
        old = executor.loader.project_state(
            [*BEFORE, *graph.leaf_nodes("auth"), *graph.leaf_nodes("contenttypes")]
        ).apps
        User = old.get_model(settings.AUTH_USER_MODEL)
        ContentType = old.get_model("contenttypes", "ContentType")
        Permission = old.get_model("auth", "Permission")
        old_conversations = old.get_model("inference", "Conversation").objects
        old_messages = old.get_model("inference", "Message").objects
        old_feedback = old.get_model("feedback", "Feedback").objects

        alice = User.objects.create(username="alice", password="!")
        message_type, _ = ContentType.objects.get_or_create(app_label="inference", model="message")
        can_view, _ = Permission.objects.get_or_create(
            content_type=message_type, codename="view_message", defaults={"name": "Can view message"}
        )
        alice.user_permissions.add(can_view)
        chat = old_conversations.create(user=alice, title="Sums")
        turns = [("system", "Be brief."), ("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?")]
        written = [old_messages.create(conversation=chat, role=role, content=text) for role, text in turns]
        answer = old_messages.create(
            conversation=chat, role="assistant", content="6", provider="hf", model="tiny-a", completion_tokens=1
        )
        rating = old_feedback.create(user=alice, rating=1, message=answer, response="6", comment="right")

        _latest()

        moved = Conversation.objects.get(pk=chat.pk)
        assert (moved.user_id, moved.title) == (alice.pk, "Sums")
        stored = list(moved.messages.values_list("id", "role", "content"))
        assert stored == [(m.pk, m.role, m.content) for m in [*written, answer]]
        kept = Feedback.objects.select_related("message__conversation").get(pk=rating.pk)
        assert (kept.message_id, kept.rating, kept.comment) == (answer.pk, 1, "right")
        assert (kept.message.content, kept.message.model, kept.message.conversation) == ("6", "tiny-a", moved)
        assert isinstance(kept.message, Message)
        # The content type moved with the model (same row), so the permission granted on it still holds.
        user = type(moved.user).objects.get(pk=alice.pk)
        assert user.has_perm("conversations.view_message")
    finally:
        _latest()
