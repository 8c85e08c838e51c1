# collabgate — developer entry points. `make run` and `make test` are the two that matter.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck check bench bench-core bench-sqlite bench-fanout bench-cluster clean
.PHONY: test-setup
.DEFAULT_GOAL := help

help:
	@echo "make run    - set up and start the gateway on its embedded defaults (127.0.0.1:8080)"
	@echo "make test   - set up and run every test"
	@echo "make lint   - ruff + mypy --strict"
	@echo "make bench  - benchmarks against a gateway it starts (see bench/)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25,<27"
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/collabgate dev

# Every include below adds its own set-up prerequisites to test-setup.
test-setup: $(STAMP)

test: test-setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/ruff format --check src tests bench tools
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict -p tools.load -p tools.deploy

# The relay core's CPU per update in process, what the embedded SQLite file costs per update, the
# core fan-out benchmark, then three instances on Redis + RabbitMQ + PostgreSQL against one
# embedded instance at the same user counts (docs/performance.md).
bench: bench-core bench-sqlite bench-fanout bench-cluster

bench-core: $(STAMP)
	$(PY) bench/relay_core.py $(BENCH_CORE_ARGS)

bench-sqlite: $(STAMP)
	$(PY) bench/sqlite_writes.py $(BENCH_SQLITE_ARGS)

bench-fanout: $(STAMP)
	$(PY) bench/fanout.py $(BENCH_ARGS)

bench-cluster: $(STAMP)
	$(PY) bench/cluster.py $(BENCH_CLUSTER_ARGS)

clean:
	rm -rf $(VENV) .venv-* var .mypy_cache .ruff_cache .pytest_cache

-include mk/*.mk
