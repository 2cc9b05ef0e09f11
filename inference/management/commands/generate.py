"""Print a completion for a prompt, streaming, for quick checks from the shell."""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand, CommandError

from inference import services
from inference.management.sampling import (
    add_model_arguments,
    add_sampling_arguments,
    completion_request,
    footer,
    model_check,
)
from inference.providers.base import TextDelta
from llmsite.errors import ApplicationError


class Command(BaseCommand):
    help = "Generate a completion for PROMPT with the default model (or --model ID), printing tokens as they come."

    def add_arguments(self, parser):
        parser.add_argument("prompt")
        add_model_arguments(parser)
        add_sampling_arguments(parser)

    def handle(self, *args, prompt, **options):
        asked = completion_request(options, prompt=prompt)
        model_check(asked.model)  # an unknown id says where the ids are, before anything loads
        try:
            result = asyncio.run(self._stream(asked))
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(footer(result))

    async def _stream(self, asked):
        result = None
        async for event in services.complete_stream(asked, source="cli"):
            if isinstance(event, TextDelta):
                self.stdout.write(event.text, ending="")
                self.stdout.flush()
            else:
                result = event
        self.stdout.write("")
        return result
