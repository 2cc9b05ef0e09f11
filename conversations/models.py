"""A user's chats: conversations and their messages, the history sent with the next turn."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from llmsite.chat import ROLES


class Conversation(models.Model):
    """A user's chat: its messages, oldest first, are the history sent with the next turn.

    Write through `conversations.services` (create, rename, exchange_append), which keeps
    `updated` and the title in step with the messages.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    # The model id the conversation talks to ('' : the site's default); set by the turns that name one.
    model = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        # The table (and its index) were created when conversations lived in inference; the names
        # stay so that moving the model moved no data (conversations/migrations/0001_initial.py).
        db_table = "inference_conversation"
        ordering = ["-updated", "-id"]
        indexes = [models.Index(fields=["user", "-updated"], name="inference_c_user_id_78f08c_idx")]

    def __str__(self) -> str:
        return self.title or f"conversation {self.pk}"


class Message(models.Model):
    """One turn of a conversation; assistant turns say which provider and model wrote them, and at what cost."""

    # Built from the one list of chat roles; labels "System", "User", "Assistant" as before.
    Role = models.TextChoices("Role", [(role.upper(), role) for role in ROLES])

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=500, blank=True)
    # Token counts of the request that produced an assistant turn (null on the turns people wrote).
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=16, blank=True)
    # The tools an assistant turn called, [{id, name, arguments (JSON text)}]; the next turns' history carries them.
    tool_calls = models.JSONField(default=list, blank=True)
    # The passages an assistant turn was grounded in, as predict returned them ({id, document_id, title,
    # snippet, score, metadata, page?, heading?}), so a reopened conversation still shows them; else [].
    sources = models.JSONField(default=list, blank=True)
    # The `id` predict answered with (cmpl-<InferenceRecord.request_id hex>), to find its usage record.
    completion_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "inference_message"  # kept from inference, like Conversation's
        # Ids, not timestamps, give the order: the turns of one exchange are written together.
        ordering = ["id"]
        indexes = [models.Index(fields=["conversation", "id"], name="inference_m_convers_5309bf_idx")]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"
