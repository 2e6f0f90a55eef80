# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SECRETS := .secrets

.PHONY: run test install install-test secrets lint typecheck unit e2e-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changes.
$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.stamp-run

install: $(VENV)/.stamp-run
install-test: $(VENV)/.stamp-test

# The demo's secrets are made once on this machine, never committed.
secrets:
	@umask 077; mkdir -p $(SECRETS); \
	test -s $(SECRETS)/session_secret || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(48))" > $(SECRETS)/session_secret; \
	test -s $(SECRETS)/tiledesk_secret || $(BIN)/python -c "import uuid; print(uuid.uuid4())" > $(SECRETS)/tiledesk_secret

run: install secrets
	$(BIN)/tiledesk-bridge serve --settings settings.toml

lint: install-test
	$(BIN)/ruff check bridge tests bench
	$(BIN)/ruff format --check bridge tests bench

typecheck: install-test
	$(BIN)/mypy

unit: install-test e2e-deps
	$(BIN)/python -m pytest -q

test: install-test secrets e2e-deps lint typecheck unit

E2E_OP := tests/e2e/op

# The OpenID Provider for the browser tests: reinstalled only when its lock changes.
$(E2E_OP)/node_modules/.stamp: $(E2E_OP)/package-lock.json
	cd $(E2E_OP) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

e2e-deps: $(E2E_OP)/node_modules/.stamp

BENCH_EXPRESS := bench/express

# The Express yardstick for make bench: reinstalled only when its lock changes.
$(BENCH_EXPRESS)/node_modules/.stamp: $(BENCH_EXPRESS)/package-lock.json
	cd $(BENCH_EXPRESS) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

# Real servers on loopback, interleaved rounds, figures beside budgets (about 5 minutes).
# `make bench BENCH_ARGS=--quick` for a run under a minute. Not part of `make test`.
bench: install-test $(BENCH_EXPRESS)/node_modules/.stamp
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
