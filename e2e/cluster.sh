#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, built from upstream Go modules (e2e/build.sh).
#
#   e2e/cluster.sh up      idempotent: apt prerequisites, build (cached), control plane,
#                          containerd, CNI bridge, kubelet, kube-proxy, CoreDNS, images,
#                          volume provisioner (default StorageClass neptune-local), Prometheus;
#                          waits for the node Ready and the default ServiceAccount
#   e2e/cluster.sh down    stops every process it started, removes containers, iptables rules,
#                          the CNI bridge and the state directory ($NEPTUNE_STATE)
#   e2e/cluster.sh env     prints the exports to use the cluster
#   e2e/cluster.sh status
# Env: NEPTUNE_STATE (/var/lib/neptune-e2e), NEPTUNE_CACHE (/var/cache/neptune-k8s),
#      SKIP_IMAGE=1 (do not build/import the project image), SKIP_PROMETHEUS=1
# e2e/multinode.sh sources this file for its node functions: they read the node's layout from
# the variables below (NODE_STATE, NODE_SUFFIX, CTR_SOCK, CTR_STATE, CNI_*, KUBELET_*, NETNS),
# whose defaults are the single node's.
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

APT_PACKAGES="containerd runc containernetworking-plugins buildah iptables conntrack prometheus debootstrap gcc libc6-dev openssl curl iproute2 fuse-overlayfs"
NODE_COMPONENTS="provisioner prometheus coredns kube-proxy kubelet containerd"
NODE_STATE="$NEPTUNE_STATE"          # the node's config and data
NODE_SUFFIX=""                       # of its process names and certificates (kubelet$NODE_SUFFIX)
CTR_SOCK="$RUN/containerd.sock"
CTR_STATE=/run/neptune-e2e/containerd
RUN_ROOT=/run/neptune-e2e            # unmounted and removed by down
PAUSE_IMAGE="localhost/neptune/pause:$PAUSE_VERSION"
CNI_CONF_DIR="$NEPTUNE_STATE/cni/net.d"
CNI_BRIDGE=cni0
CNI_IPMASQ=true
CLUSTER_CIDR=$POD_CIDR               # kube-proxy's clusterCIDR
KUBE_PROXY_KUBECONFIG="$PKI/kube-proxy.kubeconfig"
KUBELET_CGROUP_ROOT=""               # "": the kubelet's default (/)
KUBELET_LOGS_DIR=""                  # "": the kubelet's default (/var/log/pods)
RUNC_ROOT=""                         # "": runc's default (/run/containerd/runc)
KUBELET_ARGS=()                      # more kubelet flags
# static: a Guaranteed pod's container with a whole-CPU request gets CPUs of its own (as
# `neptunectl run` pins its executors); kube-reserved 100m keeps CPU 0 in the shared pool.
KUBELET_CPU_MANAGER=static
COREDNS_HEALTH=127.0.0.1:8081 COREDNS_READY=127.0.0.1:8182 COREDNS_METRICS=127.0.0.1:9153
VOLUMES="$NEPTUNE_STATE/volumes"
STORAGE_CLASS=neptune-local
export CTR_SOCK PAUSE_IMAGE

apt_prereqs() {
    step "Debian packages"
    local missing=() p
    for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ "${#missing[@]}" -eq 0 ]; then log "    all present"; return; fi
    log "    installing: ${missing[*]}"
    # apt-get update once per boot of this machine (stamp in /run), then install.
    if [ ! -f /run/neptune-e2e-apt-updated ]; then
        apt-get update -qq || die "apt-get update failed"
        touch /run/neptune-e2e-apt-updated
    fi
    # A policy-rc.d that says 101 keeps the packages' services (containerd, prometheus on
    # :9090) from being started by the install: this script runs its own.
    local own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { [ "$own_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed"; }
    [ "$own_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
}

sysctls() {
    step "kernel settings (br_netfilter, ip_forward)"
    [ -d /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null || true
    [ -d /proc/sys/net/bridge ] || die "bridge netfilter unavailable (modprobe br_netfilter)"
    sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 \
        || die "could not set ip_forward / bridge-nf-call-iptables"
    # The host is cgroup v1 or v2; both work (kubelet: failCgroupV1: false).
    log "    cgroup filesystem: $(stat -fc %T /sys/fs/cgroup) (tmpfs = v1, cgroup2fs = v2)"
}

write_cni() {
    mkdir -p "$CNI_CONF_DIR"
    write_if_changed "$CNI_CONF_DIR/10-neptune-bridge.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "neptune-e2e",
  "plugins": [
    {
      "type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": $CNI_IPMASQ, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
               "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$NODE_STATE/cni/ipam"}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}

start_containerd() {
    step "containerd$NODE_SUFFIX (cgroupfs, sandbox image $PAUSE_IMAGE, CNI bridge $POD_CIDR)"
    write_cni
    local runc_root=""
    if [ -n "$RUNC_ROOT" ]; then runc_root=$'\n'"        Root = \"$RUNC_ROOT\""; fi
    mkdir -p "$NODE_STATE/containerd"
    write_if_changed "$NODE_STATE/containerd/config.toml" <<TOML
version = 2
root = "$NODE_STATE/containerd/root"
state = "$CTR_STATE"
[grpc]
  address = "$CTR_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_unprivileged_ports = false
  # This host refuses to lower oom_score_adj (even to root): clamp to containerd's own value,
  # else runc fails with "failed to update /proc/self/oom_score_adj: Permission denied".
  restrict_oom_score_adj = true
  # Pod network namespaces under our state dir, so that cluster-down removes them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false$runc_root
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF_DIR"
TOML
    start_proc "containerd$NODE_SUFFIX" containerd --config "$NODE_STATE/containerd/config.toml"
    WATCH="containerd$NODE_SUFFIX" wait_for 60 "containerd socket" ctr --address "$CTR_SOCK" version
}

start_kubelet() { # start_kubelet NODE_IP [DNS_IP (default NODE_IP)]
    local hip=$1 dns=${2:-$1} extra=""
    if [ -n "$KUBELET_CGROUP_ROOT" ]; then extra+=$'\n'"cgroupRoot: $KUBELET_CGROUP_ROOT"; fi
    if [ -n "$KUBELET_LOGS_DIR" ]; then extra+=$'\n'"podLogsDir: $KUBELET_LOGS_DIR"; fi
    extra+=$'\n'"cpuManagerPolicy: $KUBELET_CPU_MANAGER"
    if [ "$KUBELET_CPU_MANAGER" = static ]; then extra+=$'\n'"kubeReserved: {cpu: 100m}"; fi
    # The kubelet refuses to start on a checkpoint of another CPU manager policy.
    local cpu_state="$NODE_STATE/kubelet/root/cpu_manager_state"
    if [ -f "$cpu_state" ] && ! grep -q "\"policyName\":\"$KUBELET_CPU_MANAGER\"" "$cpu_state"; then
        log "    CPU manager policy is now $KUBELET_CPU_MANAGER: removing the old checkpoint"
        rm -f "$cpu_state"
    fi
    step "kubelet (node $NODE_NAME, cgroupfs${KUBELET_CGROUP_ROOT:+, cgroup root $KUBELET_CGROUP_ROOT}, CPU manager $KUBELET_CPU_MANAGER)"
    mkdir -p "$NODE_STATE/kubelet"
    write_if_changed "$NODE_STATE/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: "unix://$CTR_SOCK"
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: ["$dns"]
tlsCertFile: "$PKI/kubelet$NODE_SUFFIX.crt"
tlsPrivateKeyFile: "$PKI/kubelet$NODE_SUFFIX.key"
failSwapOn: false
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 98
imageGCLowThresholdPercent: 95
evictionHard: {memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "2%"}
podPidsLimit: -1
maxPods: 110$extra
YAML
    start_proc "kubelet$NODE_SUFFIX" "$K8S_BIN/kubelet" --config "$NODE_STATE/kubelet/config.yaml" \
        --kubeconfig "$PKI/kubelet$NODE_SUFFIX.kubeconfig" --root-dir "$NODE_STATE/kubelet/root" \
        --hostname-override "$NODE_NAME" --node-ip "$hip" --v=1 "${KUBELET_ARGS[@]}"
}

start_kube_proxy() {
    step "kube-proxy$NODE_SUFFIX (iptables mode)"
    mkdir -p "$NODE_STATE/kube-proxy"
    write_if_changed "$NODE_STATE/kube-proxy/config.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$KUBE_PROXY_KUBECONFIG"}
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
    start_proc "kube-proxy$NODE_SUFFIX" "$K8S_BIN/kube-proxy" --config "$NODE_STATE/kube-proxy/config.yaml" --v=1
}

start_coredns() {
    local hip=$1
    [ -x "$K8S_BIN/coredns" ] || { log "coredns not built: pods get the host's DNS only"; return 0; }
    step "CoreDNS on $hip:53 (cluster DNS, host process)"
    mkdir -p "$NEPTUNE_STATE/coredns"
    write_if_changed "$NEPTUNE_STATE/coredns/Corefile" <<COREFILE
.:53 {
    bind $hip
    errors
    health $COREDNS_HEALTH
    ready $COREDNS_READY
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG_ADMIN neptune-e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    prometheus $COREDNS_METRICS
    forward . /etc/resolv.conf
    cache 10
}
COREFILE
    start_proc coredns "$K8S_BIN/coredns" -conf "$NEPTUNE_STATE/coredns/Corefile"
    WATCH=coredns wait_for 60 "CoreDNS ready" curl -fsS --max-time 2 "http://$COREDNS_READY/ready"
}

start_provisioner() {
    # No CSI driver here: e2e/provisioner.py makes hostPath volumes (directories under
    # $VOLUMES) for claims of the default StorageClass, and deletes them once released.
    step "volume provisioner (default StorageClass $STORAGE_CLASS, volumes in $VOLUMES)"
    mkdir -p "$VOLUMES"
    kubectl_admin apply -f - >/dev/null <<YAML || die "could not apply StorageClass $STORAGE_CLASS"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $STORAGE_CLASS
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: neptune.dev/local-hostpath
reclaimPolicy: Delete
volumeBindingMode: Immediate
YAML
    # The interpreter itself, not a wrapper (pyenv's shim is a shell script): the pid file
    # names the program that must be running under that pid.
    local python; python=$(python3 -c 'import sys; print(sys.executable)') || die "no python3"
    start_proc provisioner "$python" "$E2E_DIR/provisioner.py" --kubectl "$K8S_BIN/kubectl" \
        --kubeconfig "$KUBECONFIG_ADMIN" --volumes "$VOLUMES" --node "$NODE_NAME"
    # The log is appended to across restarts: wait for this process's own "ready" line.
    WATCH=provisioner wait_for 30 "provisioner ready" grep -q "ready: .* pid $(pid_of provisioner)\$" "$LOGS/provisioner.log"
}

node_ready() {
    [ "$(kubectl_admin get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

cluster_up() {
    need_root
    local t0=$SECONDS hip c alive=0
    # State left by a session that was stopped (processes gone, pid files and mounts left):
    # clean it up first so that containerd, the kubelet and CNI start from a known state.
    if [ -d "$NEPTUNE_STATE/containerd" ]; then
        for c in $NODE_COMPONENTS kube-apiserver etcd; do if is_running "$c"; then alive=1; fi; done
        if [ "$alive" = 0 ]; then
            log "stale cluster state in $NEPTUNE_STATE (no component running): cleaning it first"
            cluster_down
            CURRENT_STEP="(start)"
        fi
    fi
    apt_prereqs
    step "build (cached in $NEPTUNE_CACHE)"
    "$E2E_DIR/build.sh" all
    hip=$(host_ip)
    sysctls
    "$E2E_DIR/controlplane.sh" up >/dev/null
    step "pause image"
    "$E2E_DIR/image.sh" pause
    start_containerd
    "$E2E_DIR/image.sh" import
    start_coredns "$hip"
    start_kubelet "$hip"
    start_kube_proxy
    step "waiting for node $NODE_NAME Ready"
    WATCH="kubelet containerd kube-apiserver" wait_for 180 "node $NODE_NAME Ready" node_ready
    step "waiting for the default ServiceAccount"
    WATCH="kube-controller-manager" wait_for 120 "serviceaccount default/default" kubectl_admin -n default get serviceaccount default
    start_provisioner
    if [ "${SKIP_PROMETHEUS:-0}" != 1 ]; then "$E2E_DIR/prometheus.sh" up; fi
    if [ "${SKIP_IMAGE:-0}" != 1 ] && [ -f "$E2E_DIR/../Dockerfile" ]; then
        step "project image"
        "$E2E_DIR/image.sh" project
        "$E2E_DIR/image.sh" import
    fi
    CURRENT_STEP="(finished)"
    log "cluster up in $(( SECONDS - t0 ))s. Use:"
    "$E2E_DIR/controlplane.sh" env
}

remove_containers() {
    [ -S "$CTR_SOCK" ] || return 0
    step "removing containers"
    local ctr=(ctr --address "$CTR_SOCK" --namespace k8s.io) t
    for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for t in $("${ctr[@]}" containers ls -q 2>/dev/null); do "${ctr[@]}" containers delete "$t" >/dev/null 2>&1 || true; done
}

kill_shims() { # shims of our containerd outlive it: stop them by pid
    local pid
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTR_SOCK" || true); do
        kill -9 "$pid" 2>/dev/null || true
    done
}

ours() { grep -E '^(KUBE-|CNI-[0-9a-f]{24}$|CNI-HOSTPORT-|CNI-DN-)'; }

cleanup_network() {
    step "removing kube-proxy/kubelet/CNI iptables rules and the cni0 bridge"
    if [ -x "$K8S_BIN/kube-proxy" ]; then "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
    local t chain builtin n
    for t in nat filter mangle; do
        local chains
        chains=$(iptables -t "$t" -S 2>/dev/null | awk '/^-N /{print $2}' | ours || true)
        [ -n "$chains" ] || continue
        # Jumps from the built-in chains into ours, deleted by number from the bottom up.
        for builtin in PREROUTING INPUT FORWARD OUTPUT POSTROUTING; do
            for n in $(iptables -t "$t" -L "$builtin" --line-numbers -n 2>/dev/null \
                       | awk 'NR>2{print $1, $2}' | while read -r num target; do
                           printf '%s\n' "$target" | ours >/dev/null && echo "$num"; done | sort -rn); do
                iptables -t "$t" -D "$builtin" "$n" 2>/dev/null || true
            done
        done
        for chain in $chains; do iptables -t "$t" -F "$chain" 2>/dev/null || true; done
        for chain in $chains; do iptables -t "$t" -X "$chain" 2>/dev/null || true; done
    done
    ip link del cni0 2>/dev/null || true
    rm -rf /run/containerd/runc/k8s.io
}

unmount_state() {
    local m
    # (with the slash: /var/lib/neptune-e2e-multi is not under /var/lib/neptune-e2e)
    for m in $(awk -v s="$NEPTUNE_STATE" '$2 ~ "^"s"/" {print $2}' /proc/mounts | sort -r) \
             $(awk -v r="$RUN_ROOT" '$2 ~ "^"r"/" {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
}

cluster_down() {
    need_root
    local c
    if [ -x "$E2E_DIR/prometheus.sh" ]; then "$E2E_DIR/prometheus.sh" down || true; fi
    step "stopping node components"
    stop_proc kubelet
    remove_containers
    for c in $NODE_COMPONENTS; do stop_proc "$c"; done
    kill_shims
    cleanup_network
    "$E2E_DIR/controlplane.sh" stop
    step "removing state $NEPTUNE_STATE"
    unmount_state
    rm -rf "$NEPTUNE_STATE" "$RUN_ROOT"
    CURRENT_STEP="(finished)"
    log "cluster down (build cache kept in $NEPTUNE_CACHE)"
}

# Sourced (by e2e/multinode.sh): functions only.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 0; fi

case "${1:-}" in
    up) cluster_up ;;
    deps) apt_prereqs ;;
    down) cluster_down ;;
    env) "$E2E_DIR/controlplane.sh" env ;;
    status)
        "$E2E_DIR/controlplane.sh" status
        for c in $NODE_COMPONENTS; do
            if is_running "$c"; then echo "$c: running (pid $(pid_of "$c"))"; else echo "$c: stopped"; fi
        done ;;
    *) echo "usage: $0 up|deps|down|env|status" >&2; exit 2 ;;
esac
