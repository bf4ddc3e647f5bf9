# Rapport — every target people and CI use. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KAFKA := deploy/kafka/kafka.sh

.DEFAULT_GOAL := help
.PHONY: help setup lock kafka-up kafka-down kafka-status topics test test-unit test-integration test-reliability lint fmt schemas bench demo demo-down clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## Create .venv with the project and its dev tools, pinned by requirements.lock

$(VENV)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

lock: setup ## Re-resolve requirements.lock from pyproject.toml (needs network)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra rocksdb -o requirements.lock \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28

kafka-up: ## Start the real Kafka broker on 127.0.0.1:9092 (native launcher; reuses a running one)
	bash $(KAFKA) up

kafka-down: ## Stop the native Kafka broker
	bash $(KAFKA) down

kafka-status: ## Exit 0 when the native broker is running
	bash $(KAFKA) status

topics: setup kafka-up ## Create every Rapport topic on the broker (idempotent)
	$(BIN)/rapport topics apply

test: setup ## Run the whole suite: unit, integration and e2e on a real broker (started if needed)
	$(BIN)/pytest

test-unit: setup ## Run only the unit tests (no broker)
	$(BIN)/pytest tests/unit

test-integration: setup ## Run the integration and e2e tests (real broker)
	$(BIN)/pytest tests/integration tests/e2e

RELIABILITY_RUNS ?= 10
test-reliability: setup kafka-up ## kill -9 the monitor early in a backlog, restart it, 10 times in a row: 0 lost
	$(BIN)/python -m tests.faults $(RELIABILITY_RUNS)

lint: setup ## ruff (incl. bandit rules), mypy strict on shared/, import-linter contracts, schema check
	$(BIN)/ruff check .
	$(BIN)/mypy shared
	$(BIN)/lint-imports
	$(BIN)/rapport schemas check

fmt: setup ## Fix imports and formatting issues ruff can fix
	$(BIN)/ruff check --fix .

schemas: setup ## Regenerate the committed JSON Schemas from the models
	$(BIN)/rapport schemas write

bench: setup kafka-up ## Benchmarks: numbers and ratios against a baseline measured in the same run
	@mkdir -p bench-results
	$(BIN)/python -m bench.bench_scoring
	$(BIN)/python -m bench.bench_backtest
	$(BIN)/python -m bench.cohort_report
	$(BIN)/python -m bench.bench_pipeline

demo: setup kafka-up ## Broker, topics, every service and the simulator; prints scores and signals as they arrive
	$(BIN)/python deploy/demo.py

clean: ## Remove the virtualenv, caches and demo state (not the Kafka data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .demo bench-results
