# Neptune for Kubernetes. `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# the C module is built at install: a change to it installs again
NATIVE := executor_image/neptune_runtime/_yieldcore.c executor_image/neptune_runtime/_bellwatch.c
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(NATIVE) | md5sum | cut -c1-12)
HAS_HEADERS := import os, sysconfig, sys; \
	sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))
DEMO_DURATION ?= 30s
PY_PATHS := $(wildcard executor_image operator tests examples bench e2e/tests e2e/tests_multinode e2e/provisioner.py e2e/controlplane.py)
MYPY_PATHS := $(wildcard executor_image/neptune_runtime operator/neptune_operator bench/neptune_bench tests examples e2e/tests e2e/tests_multinode e2e/provisioner.py e2e/controlplane.py)

K8S_BIN := $(shell . e2e/versions.env && echo $$NEPTUNE_CACHE/$$K8S_VERSION/bin)
export NEPTUNE_K8S_BIN ?= $(K8S_BIN)

.PHONY: setup demo test lint unit integration fuzz docs tools chart-check bench bench-setup bench-quick bench-cluster bench-contention clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(NATIVE)
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
		echo "setup: installing python3-venv from Debian"; \
		apt-get update -qq && apt-get install -y -qq python3-venv; fi
	@if ! command -v cc >/dev/null || ! $(PYTHON) -c '$(HAS_HEADERS)'; then \
		echo "setup: installing a C compiler and Python's headers from Debian (for $(NATIVE))"; \
		apt-get update -qq && apt-get install -y -qq gcc libc6-dev python3-dev; fi
	@$(PYTHON) -c '$(HAS_HEADERS)' || { echo "setup: no Python.h for $(PYTHON);" \
		"install its headers (python3-dev for Debian's python3)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing the project and its tools into $(VENV)"
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev,operator]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: setup
	@mkdir -p out
	$(VENV)/bin/neptunectl run examples/online_learning.py --executors 2 --duration $(DEMO_DURATION)

lint: setup
	$(VENV)/bin/ruff check $(PY_PATHS)
	$(VENV)/bin/mypy $(MYPY_PATHS)

unit: setup
	$(VENV)/bin/pytest -q tests/runtime

integration: setup
	$(VENV)/bin/pytest -q tests/integration

# The API reference from the docstrings, into out/site (make test builds it too, strictly).
docs: setup
	$(VENV)/bin/mkdocs build --strict

# The wire fuzzer's long run (make test runs a bounded one): executions and failures per target.
fuzz: setup
	NEPTUNE_FUZZ=long $(VENV)/bin/pytest -q tests/fuzz --hypothesis-show-statistics

# Built from source once and cached outside the repo (e2e/build.sh), and promtool from Debian.
tools:
	@test -x $(K8S_BIN)/kube-apiserver -a -x $(K8S_BIN)/helm -a -x $(K8S_BIN)/etcd || $(MAKE) k8s-build
	@command -v promtool >/dev/null || e2e/cluster.sh deps  # promtool: Debian's prometheus

chart-check: setup tools
	$(K8S_BIN)/helm lint helm/neptune --kube-version 1.34.0
	$(K8S_BIN)/helm template t helm/neptune --kube-version 1.34.0 >/dev/null
	$(K8S_BIN)/helm template t helm/neptune --kube-version 1.34.0 --set monitoring.serviceMonitor.enabled=true \
		--set monitoring.podMonitor.enabled=true --set monitoring.prometheusRule.enabled=true >/dev/null
	$(PY) -m neptune_operator.crdgen --check
	promtool test rules tests/operator/promtool/neptune_rules_test.yaml

# tests/kafka needs the real broker of e2e/kafka.sh (built from Maven Central jars, cached)
test: lint tools kafka-up
	$(VENV)/bin/pytest -q tests
	$(MAKE) chart-check
	$(MAKE) e2e
	$(MAKE) e2e-multinode

bench-setup: setup
	@$(PY) -c 'import neptune_bench, pyspark, distributed, matplotlib' 2>/dev/null || $(PY) -m pip install -q -e '.[bench]'

bench-quick: bench-setup
	$(VENV)/bin/neptunectl bench --quick --peers --json bench/results/quick.json --markdown bench/results/quick.md

# The quick benchmark's neptune point as ContinuousApplications on the local cluster, beside
# local mode, in one run (~12 min; issue 14). Brings the local cluster up when KUBECONFIG is unset.
bench-cluster: setup
	@set -e; \
	 if [ -z "$$KUBECONFIG" ]; then e2e/cluster.sh up; eval "$$(e2e/cluster.sh env)"; fi; \
	 $(PY) -m neptune_bench.cluster_bench --json bench/results/cluster.json \
		--markdown bench/results/cluster.md

# Two apps on one node, the operator's CPU weight by rank on and off, interleaved rounds (~8 min;
# issue 14, item 3). Brings the local cluster up when KUBECONFIG is unset.
bench-contention: setup
	@set -e; \
	 if [ -z "$$KUBECONFIG" ]; then e2e/cluster.sh up; eval "$$(e2e/cluster.sh env)"; fi; \
	 $(PY) -m neptune_bench.contention_bench --json bench/results/contention.json \
		--markdown bench/results/contention.md

# The full suite (progress output; stops starting runs after the budget), then the simulator.
bench: bench-setup
	$(VENV)/bin/neptunectl bench --full --out bench/results --repetitions 3 --budget 50m
	$(PY) -m neptune_bench.sim validate --out bench/results
	$(PY) -m neptune_bench.sim scenarios --out bench/results
	$(PY) -m neptune_bench.sim decisions --out bench/results

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache

include e2e/cluster.mk
include e2e/kafka.mk
