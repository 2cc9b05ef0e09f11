"""Switch (or reload) the model every running server serves, from the shell.

It writes the active ProviderConfig row through the same service as the admin and the API;
each server checks that row's version every LLM_CONFIG_CHECK_SECONDS, loads the new model,
swaps it in atomically and reports back on the row, which this command waits for.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from inference import services
from inference.engine import configured_spec
from inference.models import ProviderConfig
from inference.registry import PROVIDER_NAMES
from llmsite.devices import DEVICES
from llmsite.errors import ApplicationError


class Command(BaseCommand):
    help = "Switch the running servers to another provider/model/device (or reload the current one)."

    def add_arguments(self, parser):
        parser.add_argument("--provider", choices=PROVIDER_NAMES, help="default: the active one")
        parser.add_argument("--model", help="a folder under MODELS_DIR, a packaged model or a path")
        parser.add_argument("--device", choices=DEVICES)
        parser.add_argument(
            "--wait", type=float, default=30.0, help="seconds to wait for a server to apply it (0: do not wait)"
        )

    def handle(self, *args, provider=None, model=None, device=None, wait=30.0, **options):
        current = configured_spec()
        provider = provider or current.provider
        same_provider = provider == current.provider
        try:
            config = services.provider_activate(
                provider=provider,
                model=model or (current.model if same_provider else None),
                device=device or current.device,
                parameters=current.params if same_provider else None,
                load_here=False,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Active: {config} (version {config.version}); telling the running servers.")
        if wait <= 0:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            row = ProviderConfig.objects.filter(pk=config.pk).values("applied_version", "state", "state_detail").get()
            if row["applied_version"] == config.version and row["state"] in ("ready", "failed"):
                if row["state"] == "failed":
                    raise CommandError(f"the server could not load it: {row['state_detail']}")
                self.stdout.write(self.style.SUCCESS(f"A server now serves it: {row['state_detail']}"))
                return
            time.sleep(0.25)
        self.stdout.write(
            self.style.WARNING(
                f"No running server confirmed within {wait:g} s; servers apply it on their next check, "
                "and a server started later serves it from the start."
            )
        )
