"""System checks for the inference settings, run at start-up (`manage.py check`)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register()
def device_check(app_configs, **kwargs) -> list[Error]:
    errors: list[Error] = []
    if settings.DEVICE in ("cuda", "mps"):
        # Only an explicit accelerator is worth importing torch for here.
        from inference.providers.base import ProviderUnavailable
        from inference.registry import check_device

        try:
            check_device(settings.DEVICE)
        except ProviderUnavailable as exc:
            errors.append(Error(exc.message, hint="set DEVICE=auto or cpu", id="inference.E001"))
    if settings.LLM_LOAD_AT_START not in ("auto", "always", "never"):
        errors.append(Error("LLM_LOAD_AT_START must be auto, always or never", id="inference.E002"))
    if not 1 <= settings.LLM_DEFAULT_MAX_NEW_TOKENS <= settings.LLM_MAX_NEW_TOKENS:
        errors.append(Error("LLM_DEFAULT_MAX_NEW_TOKENS must be between 1 and LLM_MAX_NEW_TOKENS", id="inference.E003"))
    return errors
