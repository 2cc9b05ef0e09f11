"""Personal API keys: long-lived bearer credentials a user creates for scripts and OpenAI clients."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

API_KEY_PREFIX = "llms"

# What a key may be used for. Staff operations are never among them: those need a login.
SCOPE_CHAT = "chat"  # completions (REST, streams, WebSocket, /v1), conversations, feedback
SCOPE_EMBEDDINGS = "embeddings"  # encoding, documents and search, /v1/embeddings
SCOPE_METRICS = "metrics"  # reading the dashboard metrics and the Prometheus exposition
API_KEY_SCOPES = (SCOPE_CHAT, SCOPE_EMBEDDINGS, SCOPE_METRICS)
MAX_KEY_MODELS = 50


def all_scopes() -> list[str]:
    return list(API_KEY_SCOPES)


class ApiKey(models.Model):
    """A key `llms_<prefix>_<secret>`: the prefix is kept in clear (to find and show it), the whole key only hashed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=all_scopes, blank=True, help_text=f"any of {', '.join(API_KEY_SCOPES)}")
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="model ids this key may call; empty: every model its user may"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self) -> str:
        return f"{self.display_prefix} ({self.name})" if self.name else self.display_prefix

    @property
    def display_prefix(self) -> str:
        return f"{API_KEY_PREFIX}_{self.prefix}_…"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def allows_scope(self, scope: str) -> bool:
        return scope in (self.scopes or ())

    def allows_model(self, model_id: str) -> bool:
        return not self.allowed_models or model_id in self.allowed_models

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
