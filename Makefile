# Rapport — every target people and CI use. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KAFKA := deploy/kafka/kafka.sh

.DEFAULT_GOAL := help
.PHONY: prometheus-check asyncapi-check grafana-check k8s-check k8s-manifests k8s-crd-schemas help setup lock kafka-up kafka-down kafka-status topics test test-unit test-slow test-integration test-reliability lint fmt schemas bench demo demo-down clean

help: ## List the targets
	@if [ -t 1 ] && [ -z "$$NO_COLOR" ]; then on=$$'\033[36m'; off=$$'\033[0m'; else on=; off=; fi; \
	grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*?## "}; {printf "  %s%-17s%s %s\n", on, $$1, off, $$2}'

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
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra rocksdb --extra bench -o requirements.lock \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28

kafka-up: ## Start the real Kafka broker on 127.0.0.1:$KAFKA_PORT (9092) (native launcher; reuses a running one)
	bash $(KAFKA) up

kafka-down: ## Stop the native Kafka broker
	bash $(KAFKA) down

kafka-status: ## Exit 0 when the native broker is running
	bash $(KAFKA) status

topics: setup kafka-up ## Create every Rapport topic on the broker (idempotent)
	$(BIN)/rapport topics apply

test: setup ## Run the whole suite: unit, integration and e2e on a real broker (started if needed)
	$(BIN)/pytest

test-unit: setup ## Run only the unit tests (no broker), without the slow ones
	$(BIN)/pytest tests/unit -m "not slow"

test-slow: setup ## Run only the slow resource tests (the monitor's memory over 200k events)
	$(BIN)/pytest tests -m slow

test-integration: setup ## Run the integration and e2e tests (real broker)
	$(BIN)/pytest tests/integration tests/e2e

RELIABILITY_RUNS ?= 10
test-reliability: setup kafka-up ## kill -9 the monitor early in a backlog, restart it, 10 times in a row: 0 lost
	$(BIN)/python -m tests.faults $(RELIABILITY_RUNS)

lint: setup ## ruff, mypy strict on shared/, import-linter, schemas, promtool, dashboard and manifests current
	$(BIN)/ruff check .
	$(BIN)/mypy shared
	$(BIN)/lint-imports
	$(BIN)/rapport schemas check
	$(MAKE) --no-print-directory prometheus-check
	$(BIN)/python deploy/grafana/dashboard.py --check
	$(BIN)/python deploy/k8s/render.py --check

prometheus-check: ## promtool: check the Prometheus config and rules, run the rule unit tests
	@command -v promtool >/dev/null || { echo "promtool not found: apt-get install prometheus (.ci/run does)"; exit 1; }
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

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
	$(BIN)/python -m bench.bench_latency
	$(BIN)/python -m bench.bench_recovery
	$(BIN)/python -m bench.bench_scaleout
	$(BIN)/python -m bench.bench_notifier
	$(BIN)/python -m bench.bench_gateway
	$(BIN)/python -m bench.report

demo: setup ## Broker, topics, every service and the synthetic clinic; prints scores and signals as they arrive
	@mkdir -p .demo
	@# An explicit KAFKA_BOOTSTRAP_SERVERS is used as it is; else the native broker on $$KAFKA_PORT (9092),
	@# started here if it is not running (and then remembered, for demo-down).
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ] && ! bash $(KAFKA) status >/dev/null 2>&1; then \
		bash $(KAFKA) up && echo "$${KAFKA_HOME_DIR:-$(CURDIR)/.kafka}" > .demo/broker-started-by-demo; \
	fi
	$(BIN)/python deploy/demo.py

demo-down: setup ## Stop what `make demo` left: its services and topics, and the broker if the demo started it
	$(BIN)/python deploy/demo.py --down
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ] && [ -f .demo/broker-started-by-demo ]; then \
		KAFKA_HOME_DIR="$$(cat .demo/broker-started-by-demo)" bash $(KAFKA) down && rm -f .demo/broker-started-by-demo; \
	fi

clean: ## Remove the virtualenv, caches and demo state (not the Kafka data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .demo bench-results

ASYNCAPI_PARSER := @asyncapi/parser@3.6.3

asyncapi-check: ## Validate docs/asyncapi.yaml with the official parser (npm, in a throwaway directory)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  cp deploy/asyncapi/validate.mjs "$$tmp/" && \
	  (cd "$$tmp" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund $(ASYNCAPI_PARSER) >/dev/null) && \
	  node "$$tmp/validate.mjs" docs/asyncapi.yaml

TOOLS := .tools
KUBECONFORM_VERSION := v0.7.0
KUBERNETES_VERSION := 1.33.0
KUBERNETES_VALIDATE := kubernetes-validate==1.37.0
KEDA_VERSION := v2.21.0
K8S_KINDS := deployment-apps-v1 service-v1 configmap-v1 poddisruptionbudget-policy-v1 namespace-v1
K8S_MANIFESTS := $(filter-out deploy/k8s/services.yaml,$(wildcard deploy/k8s/*.yaml))

$(TOOLS)/bin/kubeconform:
	@command -v go >/dev/null || { echo "go not found: kubeconform is installed from the Go module proxy"; exit 1; }
	GOBIN=$(abspath $(TOOLS)/bin) go install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)

$(TOOLS)/k8s-schemas/.built-$(KUBERNETES_VERSION): deploy/k8s/schemas/build.py | setup
	rm -rf $(TOOLS)/wheels && $(BIN)/pip download --quiet --no-deps -d $(TOOLS)/wheels $(KUBERNETES_VALIDATE)
	$(BIN)/python deploy/k8s/schemas/build.py kubernetes $(TOOLS)/wheels/*.whl $(KUBERNETES_VERSION) \
		$(TOOLS)/k8s-schemas $(K8S_KINDS)
	@touch $@

k8s-check: setup $(TOOLS)/bin/kubeconform $(TOOLS)/k8s-schemas/.built-$(KUBERNETES_VERSION) ## kubeconform on deploy/k8s (Kubernetes + KEDA schemas)
	$(BIN)/python deploy/k8s/render.py --check
	$(TOOLS)/bin/kubeconform -strict -summary -kubernetes-version $(KUBERNETES_VERSION) \
		-schema-location '$(TOOLS)/k8s-schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json' \
		-schema-location 'deploy/k8s/schemas/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json' \
		$(K8S_MANIFESTS)

k8s-manifests: setup ## Regenerate deploy/k8s/<service>.yaml from deploy/k8s/services.yaml
	$(BIN)/python deploy/k8s/render.py

k8s-crd-schemas: setup ## Regenerate the committed KEDA CRD schemas from the KEDA Go module
	dir=$$(go mod download -json github.com/kedacore/keda/v2@$(KEDA_VERSION) | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') && \
	$(BIN)/python deploy/k8s/schemas/build.py crd deploy/k8s/schemas $$dir/config/crd/bases/keda.sh_scaledobjects.yaml

GRAFANA_SCHEMA := @grafana/schema@13.2.3
TYPESCRIPT := typescript@5.9.3

grafana-check: ## Type-check the dashboard against Grafana's published schema (npm, throwaway directory)
	$(BIN)/python deploy/grafana/dashboard.py --check
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && root=$$PWD && \
	  cp deploy/grafana/typecheck.mjs "$$tmp/" && \
	  (cd "$$tmp" && npm init -y >/dev/null && npm pkg set type=module >/dev/null && \
	   npm install --silent --no-audit --no-fund $(GRAFANA_SCHEMA) $(TYPESCRIPT) >/dev/null && \
	   node typecheck.mjs "$$root"/deploy/grafana/dashboards/*.json)
