"""System checks for the inference settings, run at start-up (`manage.py check`)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from llmsite.devices import ACCELERATORS, DeviceUnavailable, resolve_device


@register()
def device_check(app_configs, **kwargs) -> list[Error]:
    errors: list[Error] = []
    if settings.DEVICE in ACCELERATORS:
        # Only an explicit accelerator is worth importing torch for here.
        try:
            resolve_device(settings.DEVICE)
        except DeviceUnavailable as exc:
            errors.append(Error(exc.message, hint="set DEVICE=auto or cpu", id="inference.E001"))
    if settings.LLM_LOAD_AT_START not in ("auto", "always", "never"):
        errors.append(Error("LLM_LOAD_AT_START must be auto, always or never", id="inference.E002"))
    if not 1 <= settings.LLM_DEFAULT_MAX_NEW_TOKENS <= settings.LLM_MAX_NEW_TOKENS:
        errors.append(Error("LLM_DEFAULT_MAX_NEW_TOKENS must be between 1 and LLM_MAX_NEW_TOKENS", id="inference.E003"))
    return errors


@register()
def remote_provider_check(app_configs, **kwargs) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if settings.LLM_REMOTE_CONNECT_TIMEOUT <= 0 or settings.LLM_REMOTE_READ_TIMEOUT <= 0:
        messages.append(
            Error("LLM_REMOTE_CONNECT_TIMEOUT and LLM_REMOTE_READ_TIMEOUT must be positive", id="inference.E004")
        )
    if settings.LLM_REMOTE_MAX_RETRIES < 0 or settings.LLM_REMOTE_RETRY_MAX_WAIT < 0:
        messages.append(
            Error("LLM_REMOTE_MAX_RETRIES and LLM_REMOTE_RETRY_MAX_WAIT must be 0 or more", id="inference.E005")
        )
    if settings.LLM_PROVIDER in ("anthropic", "openai"):
        # A warning, not an error: the site starts, /readyz says why, and staff can switch providers.
        from inference.registry import remote_reason

        reason = remote_reason(settings.LLM_PROVIDER)
        if reason:
            messages.append(Warning(f"LLM_PROVIDER={settings.LLM_PROVIDER} is {reason}", id="inference.W001"))
    return messages
