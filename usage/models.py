"""The usage ledger, the limits it is checked against, and the prices that make tokens a spend.

- `UsageBucket`: the ledger. One row per hour, user, API key, model and kind (completion or
  embedding), incremented in place: a busy site writes one small upsert per request instead of
  growing a table of heavy rows, and reports read a few rows per day.
- `UsageLimit`: optional limits of one user or one API key (site-wide defaults live in settings).
- `UsageCounter`: the running total of one limit's current window, reservations included. A
  request reserves its maximum with one conditional UPDATE per limit, so concurrent requests in
  any number of server processes can never push a counter past its limit.
- `ModelPrice`: input/output price per million tokens of a model, over the USAGE_PRICES setting.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from usage.windows import KINDS


class ModelPrice(models.Model):
    model = models.CharField(max_length=500, unique=True, help_text="a model id as clients send it (GET /v1/models)")
    input_per_million = models.DecimalField(
        max_digits=14, decimal_places=6, default=0, validators=[MinValueValidator(0)], help_text="per 1M prompt tokens"
    )
    output_per_million = models.DecimalField(
        max_digits=14, decimal_places=6, default=0, validators=[MinValueValidator(0)], help_text="per 1M output tokens"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return f"{self.model}: {self.input_per_million} in / {self.output_per_million} out per 1M tokens"


def _limit_field(label: str) -> models.PositiveBigIntegerField:
    return models.PositiveBigIntegerField(null=True, blank=True, help_text=f"{label}; empty: the site default")


def _spend_field(label: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=f"{label}, in the price table's currency; empty: no budget",
    )


class UsageLimit(models.Model):
    """Limits of one user (over the site defaults) or of one API key (on top of its user's)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="usage_limit"
    )
    api_key = models.OneToOneField(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="usage_limit"
    )
    requests_per_minute = _limit_field("requests per minute")
    tokens_per_minute = _limit_field("tokens per minute")
    tokens_per_day = _limit_field("tokens per day (UTC)")
    tokens_per_month = _limit_field("tokens per calendar month (UTC)")
    spend_per_day = _spend_field("spend per day (UTC)")
    spend_per_month = _spend_field("spend per calendar month (UTC)")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, api_key__isnull=True) | Q(user__isnull=True, api_key__isnull=False),
                name="usage_limit_of_user_or_key",
            )
        ]

    def __str__(self) -> str:
        return f"limits of {self.user or self.api_key}"

    def values(self) -> dict[str, object]:
        """{kind: the value set here} for the kinds that are set."""
        return {kind: getattr(self, kind) for kind in KINDS if getattr(self, kind) is not None}


class UsageCounter(models.Model):
    """What one subject (`user:<id>`, `key:<id>`) used of one limit kind in one window, reservations included."""

    subject = models.CharField(max_length=40)
    kind = models.CharField(max_length=24)
    window_start = models.DateTimeField()
    used = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subject", "kind", "window_start"], name="usage_counter_one_per_window")
        ]
        indexes = [models.Index(fields=["window_start"])]

    def __str__(self) -> str:
        return f"{self.subject} {self.kind} @ {self.window_start:%Y-%m-%d %H:%M}: {self.used}"


class UsageBucket(models.Model):
    """The ledger: what one user and key used of one model in one hour."""

    class Kind(models.TextChoices):
        COMPLETION = "completion"
        EMBEDDING = "embedding"

    # The row's identity in one column: NULLs never collide in a unique index (SQLite and
    # PostgreSQL < 15), so (hour, user, key, model, kind) could not be the upsert's conflict target.
    key = models.CharField(max_length=600, unique=True, editable=False)
    hour = models.DateTimeField(db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_buckets"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_buckets"
    )
    model = models.CharField(max_length=500)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.COMPLETION)
    requests = models.PositiveBigIntegerField(default=0)
    cached_requests = models.PositiveBigIntegerField(default=0)
    cancelled_requests = models.PositiveBigIntegerField(default=0)
    failed_requests = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost_micros = models.PositiveBigIntegerField(default=0, help_text="spend in millionths of the currency unit")

    class Meta:
        ordering = ["-hour", "model"]
        indexes = [models.Index(fields=["user", "hour"]), models.Index(fields=["api_key", "hour"])]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.user_id}/{self.api_key_id} {self.model}: {self.requests} requests"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
