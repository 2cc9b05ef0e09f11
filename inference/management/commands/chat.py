"""An interactive chat in the terminal: tokens stream as they are produced, the conversation is kept."""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand, CommandError

from inference import services
from inference.management.sampling import (
    LIST_HINT,
    add_model_arguments,
    add_sampling_arguments,
    completion_request,
    footer,
    model_check,
)
from inference.protocol import CompletionRequest
from inference.providers.base import TextDelta
from inference.registry import PROVIDER_NAMES, REMOTE_PROVIDERS, default_model
from llmsite.errors import ApplicationError

HELP = f"""Commands:
  /model [ID]             talk to another model of the pool from the next turn (a local folder name,
                          openai/<model>, anthropic/<model>; {LIST_HINT}); no ID: the default model
  /provider NAME [MODEL]  the same, by provider (hf, anthropic, openai) and that provider's model
  /reset                  forget the conversation (keeps the system prompt)
  /quit                   leave (Ctrl+D works too; Ctrl+C stops an answer)"""


class Command(BaseCommand):
    help = "Chat with the default model (or --model ID) in the terminal, streaming tokens. /model, /reset, /quit."

    def add_arguments(self, parser):
        parser.add_argument("--system", default="", help="a system prompt for the whole conversation")
        add_model_arguments(parser)
        add_sampling_arguments(parser)

    def handle(self, *args, system, **options):
        completion_request(options, prompt="")  # refuses bad options before the chat starts
        shown = model_check(options["model"])
        self.options = options
        self.system = system
        self.history: list[dict[str, str]] = []
        self.stderr.write(f"Chatting with {shown}. /quit to leave, /help for commands.")
        while True:
            try:
                line = input("you> ")
            except (EOFError, KeyboardInterrupt):
                self.stdout.write("")
                return
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if self._command(line) == "quit":
                    return
                continue
            self._turn(line)

    def _command(self, line: str) -> str | None:
        name, *args = line.split()
        if name in ("/quit", "/exit"):
            return "quit"
        if name == "/reset":
            self.history.clear()
            self.stderr.write("(conversation forgotten)")
        elif name == "/model" and len(args) <= 1:
            self._switch(args[0] if args else None)
        elif name == "/provider" and 1 <= len(args) <= 2:
            self._switch_provider(*args)
        elif name == "/help":
            self.stderr.write(HELP)
        else:
            self.stderr.write(f"unknown command {line!r}\n{HELP}")
        return None

    def _switch(self, model: str | None) -> None:
        """Name another model for the next turns; this chat only (the site's default stays)."""
        try:
            shown = model_check(model)
        except CommandError as exc:
            self.stderr.write(f"cannot switch: {exc}")
            return
        self.options["model"] = model
        self.stderr.write(f"(now talking to {shown})")

    def _switch_provider(self, provider: str, model: str | None = None) -> None:
        if provider not in PROVIDER_NAMES:
            self.stderr.write(f"unknown provider {provider!r}; known: {', '.join(PROVIDER_NAMES)}")
            return
        model = model or default_model(provider)
        self._switch(f"{provider}/{model}" if provider in REMOTE_PROVIDERS else model)

    def _turn(self, text: str) -> None:
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            *self.history,
            {"role": "user", "content": text},
        ]
        try:
            answer = asyncio.run(self._stream(completion_request(self.options, messages=messages)))
        except CommandError as exc:  # the conversation outgrew a limit
            self.stderr.write(f"error: {exc} (/reset starts a shorter conversation)")
            return
        except KeyboardInterrupt:
            self.stderr.write("\n(stopped)")
            return
        except ApplicationError as exc:
            hint = " (/reset starts a shorter conversation)" if exc.code == "prompt_too_long" else ""
            self.stderr.write(f"error: {exc.message}{hint}")
            return
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]

    async def _stream(self, asked: CompletionRequest) -> str:
        parts: list[str] = []
        self.stdout.write("bot> ", ending="")
        async for event in services.complete_stream(asked, source="cli"):
            if isinstance(event, TextDelta):
                parts.append(event.text)
                self.stdout.write(event.text, ending="")
                self.stdout.flush()
            else:
                self.stdout.write("")
                self.stderr.write(footer(event))
        return "".join(parts)
