"""Prepare the default models once, offline: SmolLM2's GGUF to safetensors, then to OpenVINO; check the encoder."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inference.management.openvino import export_for_engine
from llmsite.model_store import (
    ALIASES,
    PACKAGED_LLMS,
    ModelNotFound,
    is_prepared,
    prepare_packaged_llm,
    resolve_encoder_folder,
)

# The stages prepare_packaged_llm reports; the de-quantising one draws its own per-tensor bar.
STAGES = 3


class Command(BaseCommand):
    help = "Convert the packaged LLM to a safetensors folder under data/models/ (once) and check the embedding model."

    def add_arguments(self, parser):
        parser.add_argument("--model", default=None, help="packaged LLM to prepare (default: LLM_MODEL when packaged)")

    def handle(self, *args, model: str | None, **options):
        name = ALIASES.get(model or settings.LLM_MODEL, model or settings.LLM_MODEL)
        if name in PACKAGED_LLMS:
            self._prepare_llm(name)
            if settings.LLM_ENGINE != "transformers":
                export_for_engine(self, settings.MODELS_DIR / name, name)
        elif model:
            raise CommandError(f"{model!r} is not a packaged model ({', '.join(sorted(PACKAGED_LLMS))})")
        else:
            self.stdout.write(f"LLM_MODEL={name} is not a packaged model; nothing to convert.")
        try:
            folder = resolve_encoder_folder(settings.EMBEDDING_MODEL)
        except ModelNotFound as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Embedding model {settings.EMBEDDING_MODEL}: ready at {folder}")

    def _prepare_llm(self, name: str) -> None:
        target = settings.MODELS_DIR / name
        if is_prepared(target):
            self.stdout.write(f"LLM {name}: already prepared at {target}")
            return
        started = time.monotonic()
        with tqdm(total=STAGES, desc=f"Preparing {name}", unit="stage") as bar:

            def on_stage(label: str) -> None:
                # A stage counts as done when the next one starts.
                if bar.postfix:
                    bar.update(1)
                bar.set_postfix_str(label)

            try:
                folder, _ = prepare_packaged_llm(name, settings.MODELS_DIR, step=on_stage)
            except ModelNotFound as exc:
                raise CommandError(str(exc)) from exc
            bar.update(bar.total - bar.n)
        elapsed = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(f"LLM {name}: converted to {folder} in {elapsed:.1f} s"))
