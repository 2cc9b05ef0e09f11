"""Ratings (thumbs up/down) and comments on the model's answers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Feedback(models.Model):
    """One user's rating of one answer: a conversation's assistant Message, or a prompt/response pair.

    Write through `feedback.services.feedback_create`, which sanitises the comment and copies the
    rated exchange into `context`/`prompt`/`response`, so the rating and the training export
    outlive the conversation it came from.
    """

    class Rating(models.IntegerChoices):
        UP = 1, "up"
        DOWN = -1, "down"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feedback")
    rating = models.SmallIntegerField(choices=Rating.choices)
    # Plain text: markup removed before storing (feedback.sanitize). None, not "", when there is no
    # comment (empty or whitespace-only ones included): the API shows null, and "has a comment" is one filter.
    comment = models.TextField(null=True, blank=True)  # noqa: DJ001
    message = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="feedback"
    )
    # The turns the model answered, [{role, content}], oldest first; the answer itself is `response`.
    context = models.JSONField(default=list, blank=True)
    prompt = models.TextField(blank=True, help_text="the last user turn before the answer")
    response = models.TextField(blank=True, help_text="the answer that was rated")
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=500, blank=True)
    completion_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "feedback"
        ordering = ["-created", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(rating__in=[1, -1]), name="feedback_rating_up_or_down"),
            # Rating a message again changes the rating instead of counting twice.
            models.UniqueConstraint(
                fields=["user", "message"], condition=Q(message__isnull=False), name="feedback_one_per_user_message"
            ),
        ]
        indexes = [models.Index(fields=["rating", "-created"]), models.Index(fields=["model", "-created"])]

    def __str__(self) -> str:
        return f"{'+1' if self.rating > 0 else '-1'} by {self.user_id} on {self.model or 'unknown model'}"
