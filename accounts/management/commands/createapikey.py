"""`manage.py createapikey USER [--name N] [--expires-days D]`: print a new API key's secret once."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts import services
from llmsite.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a personal API key for USER and print its secret (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="a label to recognise the key by")
        parser.add_argument("--expires-days", type=int, default=None, help="expire after this many days")

    def handle(self, *args, username: str, name: str, expires_days: int | None, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be 1 or more.")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        try:
            api_key, secret = services.api_key_create(user=user, name=name[:100], expires_at=expires_at)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        # The secret alone on stdout, so scripts can capture it; the rest goes to stderr.
        self.stdout.write(secret)
        expiry = f", expires {api_key.expires_at:%Y-%m-%d %H:%M} UTC" if api_key.expires_at else ""
        self.stderr.write(f"Created API key {api_key.display_prefix} (id {api_key.pk}) for {user}{expiry}.")
