# Everything a fresh machine needs is installed by these targets (Python 3.11 must exist).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup dev materialize doctor test chromium lint bench sandbox clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

## The Dagster UI (http://127.0.0.1:3000) with schedules and sensors running, on the simulated
## market and the SQLite warehouse in data/. `dg dev` reads [tool.dg] in pyproject.toml; it is
## told the project's virtualenv, which `make` does not activate.
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME) VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg dev -h 127.0.0.1 -p 3000

## Headless: materialize the latest session of every asset and print a summary.
materialize: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME) $(BIN)/python -m volaris_assets.materialize

## Is this deployment able to run? Settings, warehouse, providers and their budgets, webhook,
## Dagster instance (see README).
doctor: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME) $(BIN)/volaris-doctor

## Debian's Chromium for the UI test (Playwright drives it; browser downloads fail offline).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## The whole test suite (needs PostgreSQL on 127.0.0.1:5432, database `test`; see README).
## Two pytest-xdist workers, each with its own PostgreSQL database; TEST_WORKERS=0 runs it in
## this one process.
TEST_WORKERS ?= 2
test: $(STAMP) chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=30 -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check volaris_assets volaris_assets_tests bench

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run_all

sandbox: $(STAMP)
	$(BIN)/python -m volaris_assets.sandbox --port 8765 --faults flaky

clean:
	rm -rf $(VENV) .dagster_home data
