# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SECRETS := .secrets

.PHONY: run test install install-test secrets lint typecheck unit e2e-deps bench clean messages

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

# The visitor-facing strings: extract them, then merge them into each language's catalogue
# (locales/<lang>.po, compiled in memory when the bridge starts). Translate what is new.
LANGUAGES := it es fr de pt
messages: install
	$(BIN)/pybabel extract --mapping babel.cfg --add-location file --sort-by-file --no-wrap \
		--project tiledesk-sso-bridge --omit-header --output locales/messages.pot .
	for lang in $(LANGUAGES); do \
		test -f locales/$$lang.po || $(BIN)/pybabel init --no-wrap -i locales/messages.pot -l $$lang -o locales/$$lang.po; \
		$(BIN)/pybabel update --no-wrap -i locales/messages.pot -l $$lang -o locales/$$lang.po; \
	done

E2E_OP := tests/e2e/op

# The OpenID Provider for the browser tests: reinstalled only when its lock changes.
$(E2E_OP)/node_modules/.stamp: $(E2E_OP)/package-lock.json
	cd $(E2E_OP) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

E2E_AXE := tests/e2e/axe

# axe-core, the accessibility checker the browser suite injects into each page.
$(E2E_AXE)/node_modules/.stamp: $(E2E_AXE)/package-lock.json
	cd $(E2E_AXE) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

e2e-deps: $(E2E_OP)/node_modules/.stamp $(E2E_AXE)/node_modules/.stamp

bench: install-test
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
