"""Building a local provider from plain options: the one recipe the web process and a runner share.

Plain Python, no Django. `inference.registry.local_options` turns settings into a
`LocalOptions`; `build_local(options)` chooses the engine (OpenVINO or transformers) and
returns the provider, not loaded. A runner process (`inference.runners`) receives the same
options as JSON, so a model is built the same way in or out of the web process, and the engine
choice (which imports OpenVINO) happens where the model will run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inference.providers.base import ProviderUnavailable
from inference.providers.batching import BatchLimits
from llmsite.devices import DeviceUnavailable, resolve_device

ENGINES = ("auto", "openvino", "transformers")


@dataclass(frozen=True)
class LocalOptions:
    """Everything that decides how a local model is served (JSON-able: it travels to runner processes)."""

    model: str
    folder: str
    engine: str = "auto"  # LLM_ENGINE
    device: str = "auto"
    dtype: str = "auto"
    precision: str = "fp32"
    workers: int = 4
    batching: bool = True
    max_batch_size: int = 16
    max_batched_tokens: int = 2048
    max_queue: int = 64
    kv_cache_gb: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LocalOptions:
        return cls(**values)

    @property
    def limits(self) -> BatchLimits:
        return BatchLimits(self.max_batch_size, self.max_batched_tokens, self.max_queue)


def choose_engine(options: LocalOptions) -> tuple[str, str]:
    """(engine, why not OpenVINO): the preference, the device, the wheel and the export decide.

    With engine=openvino a reason is an error (ProviderUnavailable); with auto it is why
    transformers serves instead, shown in /readyz, /api/v1/providers and the log.
    """
    from inference.providers import openvino

    if options.engine == "transformers":
        return "transformers", "LLM_ENGINE=transformers"
    try:
        device = resolve_device(options.device)
    except DeviceUnavailable as exc:
        raise ProviderUnavailable(exc.message) from exc
    if device != "cpu":
        reason = f"OpenVINO serves on the CPU here; DEVICE resolves to {device}"
    else:
        reason = openvino.import_problem()
        if not reason and not openvino.is_exported(Path(options.folder), options.precision):
            reason = (
                f"{options.model} has no OpenVINO {options.precision} export "
                f"(manage.py export_openvino {options.model} makes one)"
            )
    if reason and options.engine == "openvino":
        raise ProviderUnavailable(f"LLM_ENGINE=openvino, but {reason}")
    return ("transformers", reason) if reason else ("openvino", "")


def build_local(options: LocalOptions) -> Any:
    """The provider `options` describe (an HFProvider or OpenVINOProvider), not loaded yet."""
    from inference.providers.hf import HFProvider
    from inference.providers.openvino import OpenVINOProvider

    engine, reason = choose_engine(options)
    if engine == "openvino":
        return OpenVINOProvider(
            options.model,
            options.folder,
            precision=options.precision,
            workers=options.workers,
            limits=options.limits,
            kv_cache_gb=options.kv_cache_gb,
        )
    provider = HFProvider(
        options.model,
        options.folder,
        device=options.device,
        dtype=options.dtype,
        workers=options.workers,
        batching=options.batching,
        limits=options.limits,
    )
    provider.engine_note = reason
    return provider
