"""Device names (DEVICE, TRAINING_DEVICE, a ProviderConfig's device) and what each means on this machine.

Plain Python: settings import it, and torch is imported only when a name is resolved. Callers
translate DeviceUnavailable into their own error family (ProviderUnavailable, TrainingError, ...).
"""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda", "mps")
# Explicit accelerators: only these are worth importing torch for in a start-up check.
ACCELERATORS = ("cuda", "mps")


class DeviceUnavailable(Exception):
    """The device name is unknown, or names an accelerator this machine lacks; `message` says which."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def resolve_device(name: str, *, auto_picks_mps: bool = True) -> str:
    """The concrete torch device for `name`: `auto` → cuda, then mps (unless `auto_picks_mps` is false), then cpu.

    Raises DeviceUnavailable for an unknown name, or for cuda/mps when torch sees none.
    """
    if name not in DEVICES:
        raise DeviceUnavailable(f"unknown device {name!r}; use one of {', '.join(DEVICES)}")
    if name == "cpu":
        return name
    import torch

    def mps_available() -> bool:
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if auto_picks_mps and mps_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("DEVICE=cuda but no CUDA device is available (torch sees none)")
    if name == "mps" and not mps_available():
        raise DeviceUnavailable("DEVICE=mps but the MPS backend is not available on this machine")
    return name
