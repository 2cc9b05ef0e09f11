#!/bin/sh
# Container start: apply migrations, then serve with daphne on HOST:PORT (SIGTERM drains: docs/architecture.md#shutdown).
set -e
python manage.py migrate --noinput
exec python -m llmsite.serve -b "${HOST:-0.0.0.0}" -p "${PORT:-8000}"
