# Two entry points for a fresh machine: `make run` (the main job) and `make test` (every tier).
# Both create or reuse .venv and install haul with its dev and infra extras.

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint venv sysdeps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,infra]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# The main job on the embedded default: dev server + Postgres, a worker, a sample ingestion.
# Serves until Ctrl-C; `make run ARGS=--exit-when-done` exits once the sample is done.
run: $(STAMP)
	$(BIN)/haul run $(ARGS)

# Toolchains the stack tier builds and boots with: Go (temporal-server), Java 17 + Maven
# (Cassandra), a PostgreSQL server built with SSL (the --tls stack; pgserver's has none), and
# Chromium for the browser tier (Playwright drives it; it downloads no browser of its own).
# Installed from Debian's packages when missing and we may (root).
sysdeps:
	@missing=""; \
	command -v go >/dev/null || missing="$$missing golang"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "install these packages first:$$missing" >&2; exit 1; fi; \
	fi

# Every test tier: unit, integration (dev stack), stack (temporal-server on Postgres and
# Cassandra), infra (Pulumi mocks, policies, schemas, hadolint), loadtest, replay, browser.
test: $(STAMP) sysdeps
	$(BIN)/lint-imports
	$(BIN)/python -m pytest tests -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check app tests loadtest infra
	$(BIN)/mypy app/
