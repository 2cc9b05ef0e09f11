"""Which models the site serves: switch the default (`provider_activate`), load and unload pool models (staff)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from inference.engine import get_engine
from inference.models import ProviderConfig
from inference.providers.base import (
    ProviderUnavailable,
)
from inference.registry import ProviderSpec, UnknownModel, check_device, check_spec, default_model, spec_for_model
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError


def _pool_row(model: str) -> dict[str, Any]:
    from inference import selectors

    for row in selectors.models_list():
        if row["id"] == model:
            return row
    return {"id": model, "state": "idle"}


def model_load(model: str) -> dict[str, Any]:
    """Load `model` into the pool now (staff); 404 for an unknown id, 503 when it cannot load."""
    get_engine().preload(model)
    return _pool_row(model)


def model_unload(model: str) -> dict[str, Any]:
    """Unload `model` (staff); one with answers running unloads when they end. 404 when it is not a model."""
    engine = get_engine()
    if not engine.unload(model):
        try:
            spec_for_model(model, engine.default_spec())
        except UnknownModel as exc:
            raise ApplicationError(exc.message, code=ErrorCode.MODEL_NOT_FOUND, status=404, field="model") from exc
    return _pool_row(model)


# --- provider switching ------------------------------------------------------------------------


def _unavailable(exc: ProviderUnavailable) -> ApplicationError:
    return ApplicationError(exc.message, code=ErrorCode.UNAVAILABLE, field="provider")


def provider_activate(
    *,
    provider: str,
    model: str | None = None,
    device: str | None = None,
    parameters: dict[str, Any] | None = None,
    config: ProviderConfig | None = None,
    load_here: bool = True,
) -> ProviderConfig:
    """Make provider/model/device what every server serves, through the active ProviderConfig row.

    With `load_here` (the API and the admin, which run in a server) this process loads the model
    first and swaps atomically; a model that cannot load is an ApplicationError (400) and nothing
    changes. Without it (`reload_model` in its own process) the row is validated and written;
    servers notice the new version within LLM_CONFIG_CHECK_SECONDS and report on the row.
    Saving the same choice again bumps the version, which reloads the weights.
    """
    model = model or (config.model if config else "") or default_model(provider)
    device = device or (config.device if config else "") or "auto"
    if parameters is None:
        parameters = config.parameters if config else {}
    spec = ProviderSpec(provider, model, device, tuple(sorted(parameters.items())))
    try:
        check_spec(spec)
        check_device(device)
    except ProviderUnavailable as exc:
        raise _unavailable(exc) from exc

    def commit() -> ProviderSpec:
        nonlocal config
        with transaction.atomic():
            row = config
            if row is None:
                row = ProviderConfig.objects.filter(provider=provider, model=model, device=device).first()
            if row is None:
                row = ProviderConfig(provider=provider, model=model, device=device)
            others = ProviderConfig.objects.filter(active=True)
            if row.pk:
                others = others.exclude(pk=row.pk)
                latest = ProviderConfig.objects.filter(pk=row.pk).values_list("version", flat=True).first()
                row.version = (latest or row.version) + 1
            others.update(active=False)
            row.provider, row.model, row.device, row.parameters = provider, model, device, parameters
            row.active = True
            row.applied_version, row.state, row.state_detail = None, "", ""
            row.save()
        config = row
        return ProviderSpec(provider, model, device, spec.parameters, ("db", row.pk, row.version))

    if load_here:
        try:
            get_engine().load(spec, commit=commit)
        except ProviderUnavailable as exc:
            raise _unavailable(exc) from exc
    else:
        commit()
    assert config is not None
    config.refresh_from_db()
    return config
