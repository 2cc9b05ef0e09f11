"""Export a local model (packaged, prepared or fine-tuned) to OpenVINO, for LLM_ENGINE=auto|openvino."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.management.openvino import export_for_engine
from inference.providers.openvino import PRECISIONS
from llmsite.model_store import ModelNotFound, resolve_llm_folder


class Command(BaseCommand):
    help = "Export MODEL (a folder under MODELS_DIR, a packaged model or a path) to OpenVINO IR, once per precision."

    def add_arguments(self, parser):
        parser.add_argument("model", nargs="?", default=None, help="default: LLM_MODEL")
        parser.add_argument(
            "--precision",
            action="append",
            choices=PRECISIONS,
            help="fp32 (exact), int8 or int4; repeat for several (default: LLM_EXPORT_PRECISIONS)",
        )

    def handle(self, *args, model: str | None, precision: list[str] | None, **options):
        name = model or settings.LLM_MODEL
        try:
            folder = resolve_llm_folder(name, settings.MODELS_DIR)
        except ModelNotFound as exc:
            raise CommandError(str(exc)) from exc
        export_for_engine(self, folder, name, precision)
