# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SECRETS := .secrets
# The app's exact versions, with hashes (`make lock` writes them from pyproject.toml's ranges).
LOCK := requirements.lock
TEST_LOCK := requirements-test.lock
# uv writes the locks and builds the lowest-versions venv; pinned, from PyPI.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
LOWEST := .venv-lowest
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test install install-test secrets lint typecheck unit e2e-deps bench clean \
	lock lock-upgrade test-lowest messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installed from the lock, reinstalled when it (or pyproject.toml) changes; `pip check`
# catches a dependency added to pyproject.toml but not yet locked.
define install_locked
	$(BIN)/pip install --quiet --require-hashes -r $(1)
	$(BIN)/pip install --quiet --quiet --no-deps -e .
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; echo "$(1) is out of date: run make lock"; exit 1; }
endef

$(VENV)/.stamp-run: $(LOCK) pyproject.toml | $(BIN)/python
	$(call install_locked,$(LOCK))
	touch $@

$(VENV)/.stamp-test: $(TEST_LOCK) pyproject.toml | $(BIN)/python
	$(call install_locked,$(TEST_LOCK))
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

$(UV): | $(BIN)/python
	$(BIN)/pip install --quiet uv==$(UV_VERSION)

LOCK_FLAGS := --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock"

# Re-lock after editing pyproject.toml's dependencies: keeps every pin that still fits.
# The test lock is constrained by the app's, so `make test` tests the versions `make run` runs.
lock: $(UV)
	$(UV) pip compile $(LOCK_FLAGS) $(UPGRADE) pyproject.toml -o $(LOCK)
	$(UV) pip compile $(LOCK_FLAGS) $(UPGRADE) --extra test -c $(LOCK) pyproject.toml -o $(TEST_LOCK)

# Every pin to the newest release the ranges allow.
lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

# The whole suite on the lowest versions pyproject.toml allows (uv's lowest-direct), in
# its own venv; first checks that each installed direct dependency is exactly its bound.
test-lowest: $(UV) secrets e2e-deps
	rm -rf $(LOWEST)
	$(UV) venv --quiet --python $(PYTHON) $(LOWEST)
	$(UV) pip install --quiet --python $(LOWEST)/bin/python --resolution lowest-direct -e '.[test]'
	$(LOWEST)/bin/python .ci/lowest_bounds.py
	$(LOWEST)/bin/python -m pytest -q

BENCH_EXPRESS := bench/express

# The Express yardstick for make bench: reinstalled only when its lock changes.
$(BENCH_EXPRESS)/node_modules/.stamp: $(BENCH_EXPRESS)/package-lock.json
	cd $(BENCH_EXPRESS) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

# Real servers on loopback, interleaved rounds, figures beside budgets (5-10 minutes).
# `make bench BENCH_ARGS=--quick` for a shorter one. Not part of `make test`.
bench: install-test $(BENCH_EXPRESS)/node_modules/.stamp
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache
