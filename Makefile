# Quick start: `make demo` and `make test`. Each target sets up what it needs.
SHELL := /bin/bash
UV_VERSION := 0.13.9
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME := $(CURDIR)/var/dagster_home
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: setup demo test bench dagster docs clean

setup: $(VENV)/.synced
	@bash scripts/system_packages.sh
	@mkdir -p $(DAGSTER_HOME) && cp -f dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# uv itself is pinned and installed into .tools; the environment comes from uv.lock only.
$(VENV)/.synced: pyproject.toml uv.lock
	@test -x .tools/bin/uv || (python3 -m venv .tools && .tools/bin/pip install -q uv==$(UV_VERSION))
	.tools/bin/uv sync --frozen --quiet
	@touch $@

demo: setup
	$(VENV)/bin/dunning demo

test: setup
	$(PY) -m pytest -n auto --dist worksteal

bench: setup
	$(VENV)/bin/dunning bench

dagster: setup
	$(VENV)/bin/dagster dev -m dagster_project.definitions -h 127.0.0.1 -p 3000

docs: setup
	$(VENV)/bin/dunning docs

clean:
	rm -rf var .venv .tools
