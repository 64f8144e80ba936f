SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
PYTHON3 ?= python3
UV := .uv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
# Written after a successful `uv sync`: `make run` / `make test` only sync again when the lock or
# pyproject changed (or .venv was removed).
INSTALLED := $(VENV)/.installed

HOST := 127.0.0.1
PORT := 8000
# Extra pytest arguments: make test ARGS="tests/analysis -x"
ARGS ?=

# System packages, one per line in system-packages.txt (shared with .ci/run).
APT_PACKAGES := $(shell grep -v '^\#' system-packages.txt)

# `make run` always serves on the embedded defaults (SQLite, in-memory channel layer, local pose
# workers, eager Celery), whatever the calling shell exports.
EMBEDDED := env -u DATABASE_URL -u REDIS_URL -u REHAB_ENV

.PHONY: help install system-deps run test lint deploy-check clean

help:
	@echo "make install       create/update .venv from uv.lock (bootstraps uv $(UV_VERSION) in .uv)"
	@echo "make run           migrate, create the demo clinic, serve on http://$(HOST):$(PORT)"
	@echo "make test          run the test suite (extra pytest arguments: ARGS=...)"
	@echo "make lint          ruff, mypy, import contracts, missing migrations, bandit"
	@echo "make deploy-check  Django's deployment checks with production settings"
	@echo "make clean         remove .venv .uv var"

install: $(INSTALLED)

$(UV):
	$(PYTHON3) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(INSTALLED): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	touch $@

system-deps:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Installing system packages:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
		echo "*** Missing system packages:$$missing"; \
		echo "*** The PDF reports and the browser tests need them. Install with:"; \
		echo "***   sudo apt-get update && sudo apt-get install -y$$missing"; \
	fi

run: install system-deps
	$(EMBEDDED) $(PY) manage.py migrate --noinput
	$(EMBEDDED) $(PY) manage.py demo_clinic
	@echo
	@echo "Serving on http://$(HOST):$(PORT)  (Ctrl-C to stop)"
	@echo
	$(EMBEDDED) $(VENV)/bin/daphne -b $(HOST) -p $(PORT) rehab.asgi:application

test: install system-deps
	$(PY) -m pytest $(ARGS)

# bandit: the security lint of all the project's code (what it leaves out: .bandit); any finding
# fails, and each accepted one is marked `# nosec BXXX # reason` where it stands.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/bandit --quiet --recursive .

# The database and Redis URLs select the production branches of the settings (PostgreSQL pool,
# Redis channel layer) that the project's own checks (rehab/checks.py) inspect; nothing connects.
deploy-check: install
	REHAB_ENV=production \
	DJANGO_SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	DJANGO_ALLOWED_HOSTS=rehab.example.org \
	DATABASE_URL=postgres://rehab:deploy-check@db.invalid:5432/rehab \
	REDIS_URL=redis://redis.invalid:6379/0 \
	$(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf .venv .uv var
