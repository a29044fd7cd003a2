# The two commands of the contract: `make run` (set up and serve the demo region) and
# `make test` (the whole suite). Everything they need is installed from here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
HOST ?= 127.0.0.1
PORT ?= 8000
BENCH ?=

export ALLOW_SYNTHETIC_NHS_NUMBERS ?= 1
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/mdt
export REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: help setup run test bench lint deps assets services mesh-sandbox migrate seed clean

help:
	@echo "make run    set up everything and serve the demo region with a Celery worker"
	@echo "make setup  everything 'make run' does except serving"
	@echo "make test   run the whole test suite (lint, import contracts, unit, integration, browser)"
	@echo "make bench  run the benchmarks (BENCH=<name> for one) and write docs/benchmarks.md"

$(BIN)/uv:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: install python3.11 and python3.11-venv."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

deps: $(BIN)/uv
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --locked --quiet

assets: deps
	@command -v npm >/dev/null || { echo "npm is needed for the NHS.UK frontend assets: install nodejs and npm (Debian: apt-get install nodejs npm)."; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	scripts/copy-assets.sh
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0

services:
	scripts/ensure-services.sh

# NHS England's mesh-sandbox, the local MESH server, in its own virtualenv (var/mesh-sandbox-venv,
# pinned in scripts/mesh-sandbox.requirements.txt). scripts/serve.sh runs it; the tests start their own.
mesh-sandbox: deps
	scripts/mesh-sandbox.sh install

migrate: deps services
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py run_demo_sources --write-only

setup: deps assets services mesh-sandbox migrate seed

run: setup
	scripts/serve.sh $(HOST) $(PORT)

lint: deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: deps assets services mesh-sandbox lint
	@test -x /usr/bin/chromium || { echo "Browser tests need Chromium at /usr/bin/chromium: install Debian's package (apt-get install chromium)."; exit 1; }
	REDIS_URL=redis://127.0.0.1:6379/15 $(BIN)/pytest

bench: setup
	$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) node_modules static/vendor var
