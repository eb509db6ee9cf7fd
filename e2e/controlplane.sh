#!/usr/bin/env bash
# Start/stop a bare Kubernetes control plane on this machine: etcd + kube-apiserver (and
# kube-controller-manager + kube-scheduler when their binaries are built), no node.
# State (certs, etcd data, logs, pids) lives in $NEPTUNE_STATE (default /var/lib/neptune-e2e).
#
#   e2e/controlplane.sh up     idempotent; builds etcd/kube-apiserver/kubectl first if needed
#   e2e/controlplane.sh env    prints: export NEPTUNE_K8S_BIN=... KUBECONFIG=...
#   e2e/controlplane.sh down   stops what it started and removes $NEPTUNE_STATE
#   e2e/controlplane.sh status
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/pki.sh
. "$E2E_DIR/lib/pki.sh"

CP_COMPONENTS="kube-scheduler kube-controller-manager kube-apiserver etcd"
# Secure ports of the two controllers (their defaults) and extra flags (split on spaces), so
# that a second control plane (e2e/multinode.sh) runs beside this one.
KCM_PORT=${KCM_PORT:-10257}
SCHEDULER_PORT=${SCHEDULER_PORT:-10259}
read -ra APISERVER_EXTRA <<<"${APISERVER_EXTRA_ARGS:-}"
read -ra KCM_EXTRA <<<"${KCM_EXTRA_ARGS:-}"

print_env() {
    # shellcheck disable=SC2016  # $PATH is expanded by the caller's eval
    printf 'export NEPTUNE_K8S_BIN=%s KUBECONFIG=%s PATH=%s:$PATH\n' "$K8S_BIN" "$KUBECONFIG_ADMIN" "$K8S_BIN"
}

apiserver_ready() {
    curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
        "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null
}

cp_up() {
    need_root
    step "binaries (etcd, kube-apiserver, kubectl)"
    if [ ! -x "$K8S_BIN/etcd" ] || [ ! -x "$K8S_BIN/kube-apiserver" ] || [ ! -x "$K8S_BIN/kubectl" ]; then
        "$E2E_DIR/build.sh" controlplane
    fi
    local hip; hip=$(host_ip)
    step "certificates and kubeconfigs in $PKI (host IP $hip)"
    mkdir -p "$NEPTUNE_STATE" "$RUN" "$LOGS"
    make_pki "$hip"

    step "etcd (127.0.0.1:$ETCD_PORT)"
    start_proc etcd "$K8S_BIN/etcd" --name neptune-e2e --data-dir "$NEPTUNE_STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
        --initial-cluster "neptune-e2e=http://127.0.0.1:$((ETCD_PORT + 1))" \
        --listen-metrics-urls "http://127.0.0.1:$((ETCD_PORT + 2))" \
        --quota-backend-bytes 4294967296 --snapshot-count 10000 --log-level warn
    WATCH=etcd wait_for 60 "etcd health" curl -fsS --max-time 2 "http://127.0.0.1:$((ETCD_PORT + 2))/health"

    step "kube-apiserver (https://$hip:$APISERVER_PORT)"
    start_proc kube-apiserver "$K8S_BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --advertise-address "$hip" --bind-address 0.0.0.0 --secure-port "$APISERVER_PORT" \
        --service-cluster-ip-range "$SERVICE_CIDR" --allow-privileged=true \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
        --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority "$PKI/ca.crt" \
        --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
        --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
        --profiling=false --v=1 "${APISERVER_EXTRA[@]}"
    WATCH="etcd kube-apiserver" wait_for 180 "kube-apiserver /readyz" apiserver_ready

    if [ -x "$K8S_BIN/kube-controller-manager" ]; then
        step "kube-controller-manager"
        start_proc kube-controller-manager "$K8S_BIN/kube-controller-manager" \
            --kubeconfig "$PKI/controller-manager.kubeconfig" \
            --authentication-kubeconfig "$PKI/controller-manager.kubeconfig" \
            --authorization-kubeconfig "$PKI/controller-manager.kubeconfig" \
            --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false --use-service-account-credentials=true \
            --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
            --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
            --service-cluster-ip-range "$SERVICE_CIDR" --v=1 "${KCM_EXTRA[@]}"
    else
        log "kube-controller-manager not built yet: skipped (no default ServiceAccount, no garbage collection)"
    fi
    if [ -x "$K8S_BIN/kube-scheduler" ]; then
        step "kube-scheduler"
        start_proc kube-scheduler "$K8S_BIN/kube-scheduler" \
            --kubeconfig "$PKI/scheduler.kubeconfig" \
            --authentication-kubeconfig "$PKI/scheduler.kubeconfig" \
            --authorization-kubeconfig "$PKI/scheduler.kubeconfig" \
            --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --v=1
    fi
    step "API server answers kubectl"
    wait_for 60 "kubectl get --raw /readyz" kubectl_admin get --raw /readyz
    for c in $CP_COMPONENTS; do [ -f "$RUN/$c.pid" ] && check_alive "$c"; done
    CURRENT_STEP="(finished)"
    log "control plane up. Use:"
    print_env
}

cp_down() {
    step "stopping the control plane"
    local c
    for c in $CP_COMPONENTS; do stop_proc "$c"; done
}

case "${1:-}" in
    up) cp_up ;;
    env) print_env ;;
    status)
        for c in $CP_COMPONENTS; do
            if is_running "$c"; then echo "$c: running (pid $(pid_of "$c"))"; else echo "$c: stopped"; fi
        done ;;
    down)
        for c in kubelet containerd; do
            if is_running "$c"; then die "a full cluster runs here ($c): use make cluster-down"; fi
        done
        cp_down
        step "removing $NEPTUNE_STATE"
        rm -rf "$NEPTUNE_STATE"
        log "control plane down" ;;
    stop) cp_down ;;
    *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
