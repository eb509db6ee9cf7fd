# Local real-cluster targets (included from the top-level Makefile). See e2e/README.md.
# Everything built is cached in $(NEPTUNE_CACHE); cluster state lives in $(NEPTUNE_STATE).
E2E_DIR ?= e2e
NEPTUNE_CACHE ?= /var/cache/neptune-k8s
NEPTUNE_STATE ?= /var/lib/neptune-e2e
export NEPTUNE_CACHE NEPTUNE_STATE

.PHONY: k8s-build controlplane-up controlplane-down cluster-up cluster-down cluster-status image e2e \
	multinode-up multinode-down multinode-status e2e-multinode

k8s-build:            ## build/cached: kube-*, kubectl, etcd, helm, coredns, pause (log: $(NEPTUNE_CACHE)/build.log)
	@mkdir -p $(NEPTUNE_CACHE)
	@bash -c 'set -o pipefail; $(E2E_DIR)/build.sh all 2>&1 | tee -a $(NEPTUNE_CACHE)/build.log'

controlplane-up:      ## etcd + kube-apiserver (+ controller-manager, scheduler when built); prints exports
	@$(E2E_DIR)/controlplane.sh up

controlplane-down:
	@$(E2E_DIR)/controlplane.sh down

cluster-up:           ## single-node cluster: control plane, containerd, kubelet, kube-proxy, DNS, image, Prometheus
	@$(E2E_DIR)/cluster.sh up

cluster-down:
	@$(E2E_DIR)/cluster.sh down

cluster-status:
	@$(E2E_DIR)/cluster.sh status

image:                ## build the project image with buildah (on a Debian-made base) and import it when containerd runs
	@command -v buildah >/dev/null || { echo "make image: buildah not installed (apt-get install buildah)" >&2; exit 1; }
	@$(E2E_DIR)/image.sh all

# Runs the e2e tests against $KUBECONFIG when it is set, else brings the local cluster up first.
# (The top-level Makefile should add `e2e: setup` so that .venv has pytest and the project.)
PYTHON_E2E ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
e2e: setup
	@set -e; \
	 if [ -z "$$KUBECONFIG" ]; then $(E2E_DIR)/cluster.sh up; eval "$$($(E2E_DIR)/cluster.sh env)"; fi; \
	 echo "e2e: KUBECONFIG=$$KUBECONFIG"; \
	 $(PYTHON_E2E) -m pytest $(E2E_DIR)/tests -ra $(E2E_PYTEST_ARGS)

# Multi-node mode (e2e/multinode.sh, e2e/README.md "Multi-node mode"): three nodes in network
# namespaces beside the single-node cluster, own state (/var/lib/neptune-e2e-multi) and ports.
multinode-up:         ## 3-node cluster (netns nodes, kube-router NetworkPolicy) beside the single-node one
	@$(E2E_DIR)/multinode.sh up

multinode-down:
	@$(E2E_DIR)/multinode.sh down

multinode-status:
	@$(E2E_DIR)/multinode.sh status

# Brings the multi-node cluster up (idempotent) and runs e2e/tests_multinode against it; the
# KUBECONFIG of the environment (the single-node cluster's, say) is not used. On another
# multi-node cluster: E2E_MULTINODE_KUBECONFIG=path (nothing is started then).
e2e-multinode: setup
	@set -e; \
	 if [ -n "$(E2E_MULTINODE_KUBECONFIG)" ]; then export KUBECONFIG="$(E2E_MULTINODE_KUBECONFIG)"; \
	 else $(E2E_DIR)/multinode.sh up; eval "$$($(E2E_DIR)/multinode.sh env)"; fi; \
	 echo "e2e-multinode: KUBECONFIG=$$KUBECONFIG"; \
	 $(PYTHON_E2E) -m pytest $(E2E_DIR)/tests_multinode -ra $(E2E_PYTEST_ARGS)
