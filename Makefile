# Quick start: `make demo` and `make test`. Each target sets up what it needs.
SHELL := /bin/bash
UV_VERSION := 0.13.9
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME := $(CURDIR)/var/dagster_home
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: setup demo test bench dagster docs analyst analyst-notebook clean

# Bytecode is compiled here, once: where PYTHONDONTWRITEBYTECODE is set (this machine, CI) Python
# never caches it, and every process (each test worker, each command a test runs, each render
# worker) compiled its imports again: `compile` took 2.5 s of a profiled `dunning dispatch` of five documents,
# and a crash-recovery test with three such subprocesses 9.5 s instead of 5.2.
# The project's own modules are compiled on every set-up (only what changed); a stale file is never
# used (Python compares it with its source).
setup: $(VENV)/.synced
	@bash scripts/system_packages.sh
	@$(PY) -m compileall -q -j 0 pipeline dagster_project bench deploy
	@mkdir -p $(DAGSTER_HOME) && cp -f dagster_project/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# uv itself is pinned and installed into .tools; the environment comes from uv.lock only.
$(VENV)/.synced: pyproject.toml uv.lock
	@test -x .tools/bin/uv || (python3 -m venv .tools && .tools/bin/pip install -q uv==$(UV_VERSION))
	.tools/bin/uv sync --frozen --quiet --compile-bytecode
	@touch $@

demo: setup
	$(VENV)/bin/dunning demo

# One test worker more than cores: tests wait on the processes, servers and fsyncs they start, and a
# third worker fills that time on two cores (the whole suite: 812 s with three workers, 867-892 s with
# two, on 2026-12-06; 55 integration tests run back to back: 126 s against 132 s).
test: setup
	$(PY) -m pytest -n $$(( $$(nproc) + 1 )) --dist worksteal

# The fault suite's long run (docs/fault-suite.md): DUNNING_SOAK_TRIALS SIGKILLed `dunning run`s, each
# recovered and counted at the servers; prints the figures and writes them to var/fault-suite-soak.json;
# a failing trial's folder stays under var/fault-suite-soak/.
DUNNING_SOAK_TRIALS ?= 200
.PHONY: soak
soak: setup
	@mkdir -p var
	DUNNING_SOAK_TRIALS=$(DUNNING_SOAK_TRIALS) DUNNING_FAULT_FIGURES=$(CURDIR)/var/fault-suite-soak.json \
		$(PY) -m pytest tests/faults -q -s -p no:cacheprovider -k killed_anywhere --basetemp=$(CURDIR)/var/fault-suite-soak

bench: setup
	$(VENV)/bin/dunning bench

# `dg dev` for this project on http://127.0.0.1:3000 (dagster_project/dev.py: stops on Ctrl-C and
# SIGTERM, records the days the command line ran first)
dagster: setup
	exec $(PY) -m dagster_project.dev -h 127.0.0.1 -p 3000

docs: setup
	$(VENV)/bin/dunning docs

# The analysts' copy, read-only, in the DuckDB CLI pinned in uv.lock (duckdb-cli 1.4, the oldest DuckDB
# the copy is written for), and the notebook of their first questions (marimo, offline).
ANALYST_DB ?= var/analyst/dunning_analyst.duckdb
analyst: setup
	@test -f $(ANALYST_DB) || { echo "no analysts' copy at $(ANALYST_DB): run 'make demo' first" >&2; exit 1; }
	$(VENV)/bin/duckdb -readonly $(ANALYST_DB)

analyst-notebook: setup
	$(VENV)/bin/marimo run --no-sandbox notebooks/analyst.py -- --db $(ANALYST_DB)

clean:
	rm -rf var .venv .tools
