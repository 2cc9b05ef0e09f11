#!/bin/sh
# Container start: apply migrations, then serve with daphne on HOST:PORT.
set -e
python manage.py migrate --noinput
exec daphne -b "${HOST:-0.0.0.0}" -p "${PORT:-8000}" llmsite.asgi:application
