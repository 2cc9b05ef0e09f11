"""Battles: one prompt answered by two models at once, anonymous to the voter until the vote."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Battle(models.Model):
    """One user's prompt, the two models' answers (sides a and b) and the user's vote.

    Created when the battle starts (so a stream can name it at once); the answers, finish reasons
    and `finished` are written when both sides end. Write through `arena.services`.
    """

    class Vote(models.TextChoices):
        A = "a", "A is better"
        B = "b", "B is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both are bad"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="battles")
    prompt = models.TextField()
    model_a = models.CharField(max_length=500)
    model_b = models.CharField(max_length=500)
    # False when the user named the models: such a vote is not blind and does not count on the leaderboard.
    blind = models.BooleanField(default=True)
    answer_a = models.TextField(blank=True)
    answer_b = models.TextField(blank=True)
    finish_reason_a = models.CharField(max_length=32, blank=True, help_text="stop, length, cancelled or error")
    finish_reason_b = models.CharField(max_length=32, blank=True, help_text="stop, length, cancelled or error")
    error_a = models.TextField(blank=True, help_text="why side a failed")
    error_b = models.TextField(blank=True, help_text="why side b failed")
    vote = models.CharField(max_length=16, choices=Vote.choices, blank=True, db_index=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    finished = models.DateTimeField(null=True, blank=True, help_text="when both answers ended")
    voted = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(model_a=models.F("model_b")), name="arena_battle_two_models"),
            models.CheckConstraint(
                condition=Q(vote__in=["", "a", "b", "tie", "both_bad"]), name="arena_battle_vote_choices"
            ),
        ]
        indexes = [models.Index(fields=["user", "-created"])]

    def __str__(self) -> str:
        return f"battle {self.pk}: {self.model_a} vs {self.model_b} ({self.vote or 'no vote'})"

    @property
    def comparable(self) -> bool:
        """Both answers ended on their own (not cancelled, not failed): something to vote on."""
        return self.finished is not None and all(
            reason not in ("", "cancelled", "error") for reason in (self.finish_reason_a, self.finish_reason_b)
        )
