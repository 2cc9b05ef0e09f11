"""Print a completion for a prompt, streaming, for quick checks from the shell."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference import services
from inference.providers.base import TextDelta
from llmsite.errors import ApplicationError


class Command(BaseCommand):
    help = "Generate a completion for PROMPT with the configured model, printing tokens as they come."

    def add_arguments(self, parser):
        parser.add_argument("prompt")
        parser.add_argument("--max-new-tokens", type=int, default=None)
        parser.add_argument("--temperature", type=float, default=None)
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, prompt, max_new_tokens, temperature, seed, **options):
        if max_new_tokens is not None and not 1 <= max_new_tokens <= settings.LLM_MAX_NEW_TOKENS:
            raise CommandError(f"--max-new-tokens must be 1 to {settings.LLM_MAX_NEW_TOKENS}")
        if temperature is not None and not 0 <= temperature <= 2:
            raise CommandError("--temperature must be 0 to 2")
        try:
            result = asyncio.run(self._stream(prompt, max_new_tokens, temperature, seed))
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(
            f"\n[{result.provider}:{result.model} {result.usage.completion_tokens} tokens "
            f"in {result.latency_ms:.0f} ms, {result.finish_reason}{', cached' if result.cached else ''}]"
        )

    async def _stream(self, prompt, max_new_tokens, temperature, seed):
        result = None
        async for event in services.complete_stream(
            prompt=prompt, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, source="cli"
        ):
            if isinstance(event, TextDelta):
                self.stdout.write(event.text, ending="")
                self.stdout.flush()
            else:
                result = event
        self.stdout.write("")
        return result
