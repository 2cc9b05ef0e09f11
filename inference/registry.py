"""Which providers exist, whether each can serve, and how to build one from a spec.

The one place that turns settings (MODELS_DIR, API keys) into provider constructor
arguments; providers themselves never read settings.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings

from inference.providers.base import ModelInfo, Provider, ProviderError, ProviderUnavailable
from inference.providers.local import LocalOptions, build_local
from inference.providers.remote import HttpOptions, RemoteProvider
from inference.providers.replicas import ReplicaProvider
from llmsite.devices import DEVICES, DeviceUnavailable, resolve_device
from llmsite.model_store import PACKAGED_LLMS, ModelNotFound, is_prepared, resolve_llm_folder

logger = logging.getLogger(__name__)

PROVIDER_NAMES = ("hf", "anthropic", "openai")


@dataclass(frozen=True)
class ProviderSpec:
    """What to serve: provider, model, device, default parameters; `key` says where it came from."""

    provider: str
    model: str
    device: str = "auto"
    parameters: tuple[tuple[str, Any], ...] = ()
    key: tuple[Any, ...] = field(default=(), compare=False)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.parameters)

    def label(self) -> str:
        return f"{self.provider}:{self.model} ({self.device})"


def default_model(provider: str) -> str:
    """The model a provider serves when none is named (LLM_MODEL, ANTHROPIC_MODEL, OPENAI_MODEL); '' if unknown."""
    setting = {"hf": "LLM_MODEL", "anthropic": "ANTHROPIC_MODEL", "openai": "OPENAI_MODEL"}.get(provider)
    return getattr(settings, setting) if setting else ""


def spec_from_settings() -> ProviderSpec:
    provider, model, device = settings.LLM_PROVIDER, settings.LLM_MODEL, settings.DEVICE
    return ProviderSpec(provider, model, device, (), ("settings", provider, model, device))


# --- model ids: what clients name in `model` ------------------------------------------------------
# A local model's id is its folder name under MODELS_DIR (or a packaged model's name); a remote
# model's is `<provider>/<model>`. Nothing a client sends becomes a path outside MODELS_DIR.
LOCAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class UnknownModel(Exception):
    """No callable model has that id; the message says why and where the valid ones are listed."""

    def __init__(self, model: str, why: str = ""):
        self.model = model
        self.message = f"The model `{model}` does not exist{f' ({why})' if why else ''}; GET /v1/models lists them"
        super().__init__(self.message)


def model_id(spec: ProviderSpec) -> str:
    """The id clients use for `spec`'s model."""
    if spec.provider in REMOTE_PROVIDERS:
        return f"{spec.provider}/{spec.model}"
    return spec.model


def spec_for_model(model: str, default: ProviderSpec | None = None) -> ProviderSpec:
    """The spec that serves a client's `model` id; raises UnknownModel.

    `<provider>/<name>` is a remote model of a configured provider; a bare name is a local folder
    (or packaged model) under MODELS_DIR, else the default model's own name (`default`, when the
    default is a remote model named without its prefix, as clients of the first version send it).
    """
    provider, _, name = model.partition("/")
    if name and provider in REMOTE_PROVIDERS:
        reason = remote_reason(provider)
        if reason:
            raise UnknownModel(model, f"provider {provider} is {reason}")
        return ProviderSpec(provider, name, "auto")
    if name and provider == "hf":
        model = name
    if default is not None and model == default.model:
        return default
    if not LOCAL_ID.fullmatch(model) or ".." in model:
        raise UnknownModel(model)
    try:
        resolve_llm_folder(model, settings.MODELS_DIR)
    except ModelNotFound as exc:
        raise UnknownModel(model, str(exc).split(";")[0]) from exc
    return ProviderSpec("hf", model, settings.DEVICE)


# --- remote providers -------------------------------------------------------------------------
REMOTE_PROVIDERS = ("anthropic", "openai")
# The providers list asks an OpenAI-compatible server for its models: briefly, and not on every call.
MODEL_LIST_TIMEOUT = 3.0
MODEL_LIST_TTL = 60.0
MODEL_LIST_FAILED_TTL = 10.0  # sooner: a server that was down (Ollama not started yet) may be up now
_model_lists: dict[tuple[Any, ...], tuple[float, list[ModelInfo]]] = {}


def _http_options() -> HttpOptions:
    return HttpOptions(
        connect_timeout=settings.LLM_REMOTE_CONNECT_TIMEOUT,
        read_timeout=settings.LLM_REMOTE_READ_TIMEOUT,
        max_retries=settings.LLM_REMOTE_MAX_RETRIES,
        max_retry_wait=settings.LLM_REMOTE_RETRY_MAX_WAIT,
    )


def openai_base_urls() -> list[str]:
    """OPENAI_BASE_URL as a list: several comma-separated base URLs are replicas of one deployment."""
    return [url.strip() for url in settings.OPENAI_BASE_URL.split(",") if url.strip()] or [""]


def _remote_provider(name: str, model: str) -> RemoteProvider | ReplicaProvider:
    """An unloaded remote provider built from settings (no request is made); replicas for several OPENAI_BASE_URLs."""
    from inference.providers.anthropic import AnthropicProvider
    from inference.providers.openai import OpenAIProvider

    if name == "anthropic":
        return AnthropicProvider(
            model, api_key=settings.ANTHROPIC_API_KEY, base_url=settings.ANTHROPIC_BASE_URL, http=_http_options()
        )
    urls = openai_base_urls()
    azure_api_version = settings.OPENAI_API_VERSION if settings.OPENAI_API_TYPE == "azure" else ""
    if len(urls) == 1:
        return OpenAIProvider(
            model,
            api_key=settings.OPENAI_API_KEY,
            base_url=urls[0],
            azure_api_version=azure_api_version,
            http=_http_options(),
        )
    # Each replica tries once: moving to another replica is the retry (inference/providers/replicas.py).
    http = replace(_http_options(), max_retries=0)
    replicas = [
        (
            OpenAIProvider(
                model, api_key=settings.OPENAI_API_KEY, base_url=url, azure_api_version=azure_api_version, http=http
            ),
            url,
        )
        for url in urls
    ]
    return ReplicaProvider(
        model,
        replicas,
        cooldown=settings.UPSTREAM_COOLDOWN_SECONDS,
        max_cooldown=settings.UPSTREAM_COOLDOWN_MAX_SECONDS,
        probe_timeout=settings.LLM_REMOTE_CONNECT_TIMEOUT,
    )


def remote_reason(name: str) -> str:
    """Why a remote provider cannot serve as configured, or '' when it can."""
    provider = _remote_provider(name, "")
    setting = name.upper()
    base_urls = provider.base_urls if isinstance(provider, ReplicaProvider) else [provider.base_url]
    if not all(url.startswith(("http://", "https://")) for url in base_urls):
        return f"not configured: {setting}_BASE_URL must start with http:// or https://"
    if provider.missing_key:
        return f"not configured: set {setting}_API_KEY"
    return ""


def remote_models(name: str) -> list[ModelInfo]:
    """The configured default model first, then what the upstream lists (cached for MODEL_LIST_TTL seconds)."""
    default = default_model(name)
    provider = _remote_provider(name, default)
    # Any change of server, key or API type lists afresh (the key is hashed in memory only).
    key = (name, provider.identity, settings.OPENAI_API_TYPE, hash(getattr(settings, f"{name.upper()}_API_KEY")))
    cached = _model_lists.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    try:
        listed = provider.models(timeout=MODEL_LIST_TIMEOUT)
        found = [ModelInfo(default, "default")] + [m for m in listed if m.name != default]
        if default not in {m.name for m in listed}:
            found[0] = ModelInfo(default, f"default; not listed by {provider.host}")
        ttl = MODEL_LIST_TTL
    except ProviderError as exc:
        found = [ModelInfo(default, f"default; could not list models: {exc.message}")]
        ttl = MODEL_LIST_FAILED_TTL
    finally:
        provider.close()
    _model_lists[key] = (time.monotonic() + ttl, found)
    return found


def check_spec(spec: ProviderSpec) -> None:
    """Cheap checks (no weights loaded, no request made): raises ProviderUnavailable saying what to fix."""
    if spec.provider not in PROVIDER_NAMES:
        raise ProviderUnavailable(f"unknown provider {spec.provider!r}; known: {', '.join(PROVIDER_NAMES)}")
    if spec.provider in REMOTE_PROVIDERS:
        reason = remote_reason(spec.provider)
        if reason:
            raise ProviderUnavailable(f"provider {spec.provider!r} is {reason}")
        if not spec.model:
            raise ProviderUnavailable(f"provider {spec.provider!r} needs a model name")
        return  # the device is the upstream's business
    if spec.device not in DEVICES:
        raise ProviderUnavailable(f"unknown device {spec.device!r}; use one of {', '.join(DEVICES)}")
    try:
        resolve_llm_folder(spec.model, settings.MODELS_DIR)
    except ModelNotFound as exc:
        raise ProviderUnavailable(str(exc)) from exc


def check_device(device: str) -> str:
    """The concrete device `device` resolves to here; raises ProviderUnavailable when it is unknown or absent."""
    try:
        return resolve_device(device)
    except DeviceUnavailable as exc:
        raise ProviderUnavailable(exc.message) from exc


def local_options(spec: ProviderSpec) -> LocalOptions:
    """How the local model of `spec` is served, from settings (the folder must exist)."""
    check_spec(spec)
    return LocalOptions(
        model=spec.model,
        folder=str(resolve_llm_folder(spec.model, settings.MODELS_DIR)),
        engine=settings.LLM_ENGINE,
        device=spec.device,
        dtype=settings.LLM_DTYPE,
        precision=settings.LLM_PRECISION,
        workers=settings.LLM_WORKERS,
        batching=settings.LLM_BATCHING,
        max_batch_size=settings.LLM_MAX_BATCH_SIZE,
        max_batched_tokens=settings.LLM_MAX_BATCHED_TOKENS,
        max_queue=settings.LLM_MAX_QUEUE,
        kv_cache_gb=settings.LLM_KV_CACHE_GB,
    )


def build_provider(spec: ProviderSpec) -> Provider:
    """A provider for `spec` in this process, not loaded yet."""
    check_spec(spec)
    if spec.provider in REMOTE_PROVIDERS:
        return _remote_provider(spec.provider, spec.model)
    provider = build_local(local_options(spec))
    if provider.engine_note and settings.LLM_ENGINE == "auto":
        logger.info("%s is served by transformers: %s", spec.model, provider.engine_note)
    return provider


def serve_provider(spec: ProviderSpec) -> Provider:
    """The provider the site serves `spec` with: a local model in its own runner process (LLM_RUNNER=process).

    LLM_RUNNER=inline builds it in this process, as `build_provider` does.
    """
    check_spec(spec)
    if spec.provider in REMOTE_PROVIDERS or settings.LLM_RUNNER != "process":
        return build_provider(spec)
    from inference.runners.client import RunnerProvider

    return RunnerProvider(
        local_options(spec), start_timeout=settings.LLM_RUNNER_START_TIMEOUT, nice=settings.LLM_RUNNER_NICE
    )


def local_models() -> list[ModelInfo]:
    """Model folders under MODELS_DIR and the packaged models (prepared or not)."""
    found: dict[str, ModelInfo] = {}
    models_dir = settings.MODELS_DIR
    if models_dir.is_dir():
        for folder in sorted(models_dir.iterdir()):
            if not folder.name.startswith(".") and (folder / "config.json").is_file():
                found[folder.name] = ModelInfo(folder.name, "ready")
    for name in PACKAGED_LLMS:
        if name not in found or not is_prepared(models_dir / name):
            found[name] = ModelInfo(name, "ready" if is_prepared(models_dir / name) else "run manage.py prepare_models")
    return list(found.values())


def availability(name: str) -> tuple[bool, str, list[ModelInfo]]:
    """(available, reason when not, models) for one provider name."""
    if name == "hf":
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            return False, "torch and transformers are not installed", []
        models = local_models()
        if not any(m.detail == "ready" for m in models):
            return False, f"no model folder under {settings.MODELS_DIR}; run manage.py prepare_models", models
        return True, "", models
    if name in REMOTE_PROVIDERS:
        reason = remote_reason(name)
        if reason:
            return False, reason, [ModelInfo(default_model(name), "default")]
        return True, "", remote_models(name)
    return False, "unknown provider", []
