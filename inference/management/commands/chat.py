"""An interactive chat in the terminal: tokens stream as they are produced, the conversation is kept."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference import services
from inference.engine import configured_spec, get_engine
from inference.management.sampling import add_sampling_arguments, completion_request
from inference.protocol import CompletionRequest
from inference.providers.base import ProviderUnavailable, TextDelta
from inference.registry import PROVIDER_NAMES, ProviderSpec, build_provider, default_model
from llmsite.errors import ApplicationError

HELP = """Commands:
  /reset                  forget the conversation (keeps the system prompt)
  /provider NAME [MODEL]  talk to another provider in this chat (hf, anthropic, openai);
                          the site keeps serving its own choice
  /quit                   leave (Ctrl+D works too; Ctrl+C stops an answer)"""


class Command(BaseCommand):
    help = "Chat with the active model in the terminal, streaming tokens. /reset, /provider NAME [MODEL], /quit."

    def add_arguments(self, parser):
        parser.add_argument("--system", default="", help="a system prompt for the whole conversation")
        add_sampling_arguments(parser)

    def handle(self, *args, system, **options):
        completion_request(options, prompt="")  # refuses bad sampling options before the chat starts
        self.options = options
        self.system = system
        self.history: list[dict[str, str]] = []
        spec = configured_spec()
        self.stderr.write(f"Chatting with {spec.provider}:{spec.model}. /quit to leave, /help for commands.")
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
        elif name == "/provider" and 1 <= len(args) <= 2:
            self._switch(*args)
        elif name == "/help":
            self.stderr.write(HELP)
        else:
            self.stderr.write(f"unknown command {line!r}\n{HELP}")
        return None

    def _switch(self, provider: str, model: str | None = None) -> None:
        if provider not in PROVIDER_NAMES:
            self.stderr.write(f"unknown provider {provider!r}; known: {', '.join(PROVIDER_NAMES)}")
            return
        model = model or default_model(provider)
        try:
            chosen = build_provider(ProviderSpec(provider, model, settings.DEVICE))
            chosen.load()
        except ProviderUnavailable as exc:
            self.stderr.write(f"cannot switch: {exc}")
            return
        get_engine().set(chosen)  # this process only: the site's choice lives in the database
        self.stderr.write(f"(now talking to {provider}:{model})")

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
                self.stderr.write(
                    f"[{event.usage.completion_tokens} tokens, {event.latency_ms:.0f} ms, {event.finish_reason}]"
                )
        return "".join(parts)
