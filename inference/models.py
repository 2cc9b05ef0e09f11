"""Provider configuration (which model the site serves) and one usage record per request."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from llmsite.devices import DEVICES


class ProviderConfig(models.Model):
    """A provider/model/device choice; the active row is what every server process serves.

    Write it through `inference.services.provider_activate` (the admin, `reload_model` and the
    API all do): it validates, bumps `version`, and the servers' engines notice the new
    version within LLM_CONFIG_CHECK_SECONDS and report back in `applied_version`/`state`.
    """

    class Provider(models.TextChoices):
        HF = "hf", "Hugging Face (local)"
        ANTHROPIC = "anthropic", "Anthropic"
        OPENAI = "openai", "OpenAI-compatible"

    Device = models.TextChoices("Device", [(name.upper(), name) for name in DEVICES])

    provider = models.CharField(max_length=32, choices=Provider.choices, default=Provider.HF)
    model = models.CharField(max_length=500, help_text="a folder name under MODELS_DIR, a packaged model or a path")
    device = models.CharField(max_length=8, choices=Device.choices, default=Device.AUTO)
    parameters = models.JSONField(
        default=dict,
        blank=True,
        help_text='default sampling parameters, e.g. {"max_new_tokens": 256, "temperature": 0, "top_p": 1}',
    )
    active = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    # Reported by the server process that applied this row last.
    applied_version = models.PositiveIntegerField(null=True, blank=True, editable=False)
    state = models.CharField(max_length=16, blank=True, editable=False)
    state_detail = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="inference_one_active_provider")
        ]
        ordering = ["-active", "-updated_at"]

    def __str__(self) -> str:
        return f"{self.provider}:{self.model} ({self.device}){' [active]' if self.active else ''}"


class InferenceRecord(models.Model):
    """One completion request, cached or not, as the dashboard and billing read it."""

    class Status(models.TextChoices):
        OK = "ok"
        ERROR = "error"
        CANCELLED = "cancelled"

    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="inference_records"
    )
    source = models.CharField(max_length=16, default="api", help_text="api, sse, ws, openai, cli")
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=500)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(default=0)
    ttft_ms = models.FloatField(null=True, blank=True)
    cached = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OK)
    finish_reason = models.CharField(max_length=16, blank=True)
    error = models.TextField(blank=True)
    # The model the client named ('' for the default) when another answered: a fallback, and why.
    requested_model = models.CharField(max_length=500, blank=True)
    fallback_reason = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["user", "-created"]), models.Index(fields=["status", "-created"])]

    def __str__(self) -> str:
        return f"{self.request_id} {self.provider}:{self.model} {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
