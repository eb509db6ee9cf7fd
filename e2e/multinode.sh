#!/usr/bin/env bash
# A three-node Kubernetes on this machine, beside the single-node one (e2e/cluster.sh): the
# control plane runs on the host with its own state and ports; each node is a network
# namespace joined to a host bridge by a veth pair, with its own containerd, CNI bridge, pod
# CIDR, kubelet (own root dir, cgroup root, pod logs), kube-proxy and kube-router (NetworkPolicy
# firewall only). See "Multi-node mode" in e2e/README.md.
#
#   e2e/multinode.sh up      idempotent: build (cached), control plane, host bridge, nodes,
#                            CoreDNS, images; waits for every node Ready
#   e2e/multinode.sh down    stops what it started, removes the namespaces, veths, bridge,
#                            iptables rules, routes, cgroups and the state directory
#   e2e/multinode.sh stop-node N | start-node N   (the fault tests: kubelet and containerd only)
#   e2e/multinode.sh env | status
# Env: NEPTUNE_MULTI_STATE (/var/lib/neptune-e2e-multi), MULTINODE_NODES (3),
#      MULTI_APISERVER_PORT (7443), MULTI_ETCD_PORT (3379), SKIP_IMAGE=1 (import the cached
#      project image archive without rebuilding it)
set -euo pipefail
# Own state and ports, whatever the environment says for the single-node cluster (cluster.mk
# exports NEPTUNE_STATE): exported, so that controlplane.sh and image.sh see them too.
export NEPTUNE_STATE=${NEPTUNE_MULTI_STATE:-/var/lib/neptune-e2e-multi}
export APISERVER_PORT=${MULTI_APISERVER_PORT:-7443} ETCD_PORT=${MULTI_ETCD_PORT:-3379}
export KCM_PORT=${MULTI_KCM_PORT:-11257} SCHEDULER_PORT=${MULTI_SCHEDULER_PORT:-11259}
# A node gone NotReady has its pods evicted after 20 s (default 300 s), so that the fault test
# sees them rescheduled in a minute.
# Nodes are reached at their InternalIP: their names are not in any DNS.
export APISERVER_EXTRA_ARGS="--default-not-ready-toleration-seconds=20 --default-unreachable-toleration-seconds=20 --kubelet-preferred-address-types=InternalIP,Hostname"
export KCM_EXTRA_ARGS="--node-monitor-grace-period=20s"
NODE_NAME=mn-controlplane   # the control plane's own (unused) kubelet certificate
# shellcheck source=cluster.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
# shellcheck source=lib/pki.sh
. "$E2E_DIR/lib/pki.sh"

NODES=${MULTINODE_NODES:-3}
BRIDGE=nepmn0
BRIDGE_NET=10.250.0        # .1 the host, .1N node N
BRIDGE_IP=$BRIDGE_NET.1
PODS_NET=10.245            # node N: 10.245.N.0/24
PODS_CIDR=$PODS_NET.0.0/16
RUN_ROOT=/run/neptune-mn   # containerd and runc state of the nodes
CGROUP_PREFIX=neptune-mn-  # kubelet cgroupRoot /neptune-mn-nodeN
IPT_COMMENT="neptune-multinode"
APT_PACKAGES="$APT_PACKAGES ipset"
HOST_COMPONENTS="coredns"
COREDNS_HEALTH=$BRIDGE_IP:8081 COREDNS_READY=$BRIDGE_IP:8182 COREDNS_METRICS=$BRIDGE_IP:9153
KUBE_PROXY_KUBECONFIG="$PKI/kube-proxy-nodes.kubeconfig"
CLUSTER_CIDR=$PODS_CIDR
CNI_IPMASQ=false           # pod to pod across nodes keeps the pod's source address (policies)

node_ip() { printf '%s.%s' "$BRIDGE_NET" "$((10 + $1))"; }
netns_of() { printf 'nep-node%s' "$1"; }
in_node() { local n=$1; shift; ip netns exec "$(netns_of "$n")" "$@"; }

use_node() { # use_node N: point cluster.sh's node variables at node N
    local n=$1
    NODE_NAME=node$n NODE_SUFFIX=-node$n NETNS=$(netns_of "$n")
    NODE_STATE="$NEPTUNE_STATE/node$n"
    CTR_SOCK="$RUN/containerd-node$n.sock" CTR_STATE="$RUN_ROOT/node$n/containerd"
    RUNC_ROOT="$RUN_ROOT/node$n/runc"
    CNI_CONF_DIR="$NODE_STATE/cni/net.d" CNI_BRIDGE=cni0
    POD_CIDR=$PODS_NET.$n.0/24 POD_GATEWAY=$PODS_NET.$n.1
    KUBELET_CGROUP_ROOT=/$CGROUP_PREFIX$NODE_NAME KUBELET_LOGS_DIR="$NODE_STATE/pod-logs"
    KUBELET_ARGS=(--node-labels "neptune.dev/node=$NODE_NAME,topology.kubernetes.io/zone=zone-$n")
    # The three kubelets share the host's two cores: CPUs "of its own" on one would not be.
    KUBELET_CPU_MANAGER=none
}

node_components() { printf 'kube-router-node%s kube-proxy-node%s kubelet-node%s containerd-node%s' "$1" "$1" "$1" "$1"; }

ipt_rule() { # ipt_rule TABLE CHAIN RULE...: add once (marked with our comment)
    local t=$1 c=$2; shift 2
    iptables -t "$t" -C "$c" "$@" -m comment --comment "$IPT_COMMENT" 2>/dev/null \
        || iptables -t "$t" -I "$c" 1 "$@" -m comment --comment "$IPT_COMMENT"
}

host_network() {
    step "host bridge $BRIDGE ($BRIDGE_IP/24), NAT for the pods' egress"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then ip link add "$BRIDGE" type bridge; fi
    ip addr replace "$BRIDGE_IP/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # Node to node (and pod to pod, through the host's routes) is forwarded by the host;
    # leaving the machine, pods and nodes are masqueraded.
    ipt_rule filter FORWARD -i "$BRIDGE" -j ACCEPT
    ipt_rule filter FORWARD -o "$BRIDGE" -j ACCEPT
    ipt_rule nat POSTROUTING -s "$PODS_CIDR" ! -d "$PODS_CIDR" ! -o "$BRIDGE" -j MASQUERADE
    ipt_rule nat POSTROUTING -s "$BRIDGE_NET.0/24" ! -o "$BRIDGE" -j MASQUERADE
}

node_network() { # node_network N: the namespace, its veth, addresses and routes
    local n=$1 ns host_if ip; ns=$(netns_of "$n") host_if=nepmn-n$n ip=$(node_ip "$n")
    step "node$n: network namespace $ns, veth $host_if <-> eth0 ($ip), pods $PODS_NET.$n.0/24"
    [ -e "/run/netns/$ns" ] || ip netns add "$ns"
    if ! ip link show "$host_if" >/dev/null 2>&1; then
        ip link add "$host_if" type veth peer name eth0 netns "$ns"
    fi
    ip link set "$host_if" master "$BRIDGE" up
    in_node "$n" ip link set lo up
    in_node "$n" ip addr replace "$ip/24" dev eth0
    in_node "$n" ip link set eth0 up
    in_node "$n" ip route replace default via "$BRIDGE_IP"
    ip route replace "$PODS_NET.$n.0/24" via "$ip" dev "$BRIDGE"
    in_node "$n" sysctl -qw net.ipv4.ip_forward=1
    # kube-router filters bridged pod-to-pod traffic too: the node's own bridge netfilter.
    in_node "$n" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null \
        || log "    (no per-namespace bridge-nf-call-iptables: same-node policies rely on the host's)"
}

node_cgroups() { # node_cgroups N: the kubelet's cgroup root in every v1 hierarchy (or v2)
    local n=$1 d root; root="$CGROUP_PREFIX"node$n
    if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then mkdir -p "/sys/fs/cgroup/$root"; return; fi
    for d in /sys/fs/cgroup/*/; do
        if [ -d "$d" ]; then mkdir -p "$d$root"; fi
    done
    # cpuset children start empty in v1: give the root its parent's CPUs and memory nodes.
    local cs=/sys/fs/cgroup/cpuset
    if [ -d "$cs/$root" ]; then
        cat "$cs/cpuset.cpus" >"$cs/$root/cpuset.cpus"
        cat "$cs/cpuset.mems" >"$cs/$root/cpuset.mems"
    fi
}

node_pki() { # node_pki N HOST_IP: the node's kubelet certificate, and kubeconfigs that reach the
    # API server from a namespace (at the host's address: 127.0.0.1 there is the node's own)
    local n=$1 server="https://$2:$APISERVER_PORT"
    _cert "kubelet-node$n" "system:node:node$n" system:nodes "DNS:node$n,IP:$(node_ip "$n")" both
    _kubeconfig "$PKI/kubelet-node$n.kubeconfig" "kubelet-node$n" "$server"
    _kubeconfig "$KUBE_PROXY_KUBECONFIG" kube-proxy "$server"
    # kube-router watches pods, namespaces, policies and nodes: a client of system:masters here.
    _cert kube-router kube-router system:masters "" client
    _kubeconfig "$PKI/kube-router.kubeconfig" kube-router "$server"
}

start_kube_router() { # start_kube_router N
    local n=$1
    step "kube-router-node$n (NetworkPolicy firewall only)"
    start_proc "kube-router-node$n" "$K8S_BIN/kube-router" --kubeconfig "$PKI/kube-router.kubeconfig" \
        --run-firewall=true --run-router=false --run-service-proxy=false \
        --hostname-override "node$n" --service-cluster-ip-range "$SERVICE_CIDR" \
        --metrics-port 0 --v=1
}

node_up() { # node_up N HOST_IP
    local n=$1 hip=$2
    use_node "$n"
    node_network "$n"
    node_cgroups "$n"
    node_pki "$n" "$hip"
    start_containerd
    step "node$n: images into its containerd"
    "$E2E_DIR/image.sh" import
    start_kubelet "$(node_ip "$n")" "$BRIDGE_IP"
    start_kube_proxy
}

node_ready_n() { use_node "$1"; node_ready; }

start_node() { # start_node N: after stop-node (kubelet and containerd only)
    need_root
    local hip; hip=$(host_ip)
    use_node "$1"
    start_containerd
    start_kubelet "$(node_ip "$1")" "$BRIDGE_IP"
    WATCH="kubelet-node$1" wait_for 120 "node$1 Ready" node_ready
    CURRENT_STEP="(finished)"
    log "node$1 started (host $hip)"
}

stop_node() { # stop_node N: the kubelet and containerd stop; the pods' processes stay (as on a node cut off)
    need_root
    use_node "$1"
    step "node$1: stopping kubelet and containerd"
    stop_proc "kubelet-node$1"
    stop_proc "containerd-node$1"
    CURRENT_STEP="(finished)"
}

multinode_up() {
    need_root
    local t0=$SECONDS hip n c alive=0
    if [ -d "$NEPTUNE_STATE/node1" ]; then
        for c in etcd kube-apiserver $(node_components 1); do if is_running "$c"; then alive=1; fi; done
        if [ "$alive" = 0 ]; then
            log "stale multi-node state in $NEPTUNE_STATE (no component running): cleaning it first"
            multinode_down
            CURRENT_STEP="(start)"
        fi
    fi
    apt_prereqs
    step "build (cached in $NEPTUNE_CACHE), with kube-router"
    "$E2E_DIR/build.sh" multinode
    hip=$(host_ip)
    sysctls
    step "control plane (API server :$APISERVER_PORT, etcd :$ETCD_PORT, state $NEPTUNE_STATE)"
    "$E2E_DIR/controlplane.sh" up >/dev/null
    step "pause image"
    "$E2E_DIR/image.sh" pause
    if [ "${SKIP_IMAGE:-0}" != 1 ] && [ -f "$E2E_DIR/../Dockerfile" ]; then
        step "project image"
        "$E2E_DIR/image.sh" project
    fi
    host_network
    start_coredns "$BRIDGE_IP"
    for n in $(seq 1 "$NODES"); do node_up "$n" "$hip"; done
    for n in $(seq 1 "$NODES"); do
        step "waiting for node$n Ready"
        WATCH="kubelet-node$n containerd-node$n kube-apiserver" wait_for 180 "node$n Ready" node_ready_n "$n"
        # kube-router finds its node by name: it starts once the kubelet registered it.
        NETNS=$(netns_of "$n") start_kube_router "$n"
    done
    step "waiting for the default ServiceAccount"
    WATCH="kube-controller-manager" wait_for 120 "serviceaccount default/default" kubectl_admin -n default get serviceaccount default
    for n in $(seq 1 "$NODES"); do
        WATCH="kube-router-node$n" wait_for 60 "kube-router-node$n healthy" \
            in_node "$n" curl -fsS --max-time 2 http://127.0.0.1:20244/healthz
    done
    CURRENT_STEP="(finished)"
    log "multi-node cluster up ($NODES nodes) in $(( SECONDS - t0 ))s. Use:"
    "$E2E_DIR/controlplane.sh" env
}

node_down() { # node_down N
    local n=$1 c d ns; ns=$(netns_of "$n")
    use_node "$n"
    step "node$n: stopping its components and containers"
    stop_proc "kubelet-node$n"
    if ! is_running "containerd-node$n" && [ -e "/run/netns/$ns" ] && [ -f "$NODE_STATE/containerd/config.toml" ]; then
        start_containerd   # the containers it knows of are removed through it
    fi
    remove_containers
    for c in $(node_components "$n"); do stop_proc "$c"; done
    kill_shims
    ip route del "$PODS_NET.$n.0/24" 2>/dev/null || true
    ip link del "nepmn-n$n" 2>/dev/null || true
    if [ -e "/run/netns/$ns" ]; then ip netns del "$ns"; fi
    # The kubelet's cgroup root, deepest first (empty now that the containers are gone).
    for d in /sys/fs/cgroup/*/"$CGROUP_PREFIX"node"$n" /sys/fs/cgroup/"$CGROUP_PREFIX"node"$n"; do
        [ -d "$d" ] || continue
        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [ ! -d "$d" ] || log "    $d not removed (processes left in it?)"
    done
}

multinode_down() {
    need_root
    local n c
    # Each node in a subshell: use_node's variables (NETNS above all) must not outlive it, or
    # what runs on the host next (up's CoreDNS, after a stale state's cleanup) would be
    # started in a node's namespace, deleted by then.
    for n in $(seq 1 "$NODES"); do ( node_down "$n" ); done
    for c in $HOST_COMPONENTS; do stop_proc "$c"; done
    step "removing the bridge $BRIDGE and our iptables rules"
    ip link del "$BRIDGE" 2>/dev/null || true
    local t line
    for t in filter nat; do
        { iptables -t "$t" -S 2>/dev/null | grep -F -- "--comment $IPT_COMMENT" || true; } | while read -r line; do
            # "-A CHAIN rule..." -> "-D CHAIN rule..."
            read -ra rule <<<"${line/#-A /-D }"
            iptables -t "$t" "${rule[@]}" 2>/dev/null || true
        done
    done
    "$E2E_DIR/controlplane.sh" stop
    step "removing state $NEPTUNE_STATE"
    unmount_state
    rm -rf "$NEPTUNE_STATE" "$RUN_ROOT"
    CURRENT_STEP="(finished)"
    log "multi-node cluster down (build cache kept in $NEPTUNE_CACHE)"
}

multinode_status() {
    "$E2E_DIR/controlplane.sh" status
    local c n
    for c in $HOST_COMPONENTS $(for n in $(seq 1 "$NODES"); do node_components "$n"; echo; done); do
        if is_running "$c"; then echo "$c: running (pid $(pid_of "$c"))"; else echo "$c: stopped"; fi
    done
}

case "${1:-}" in
    up) multinode_up ;;
    down) multinode_down ;;
    env) "$E2E_DIR/controlplane.sh" env ;;
    status) multinode_status ;;
    stop-node) stop_node "${2:?node number}" ;;
    start-node) start_node "${2:?node number}" ;;
    *) echo "usage: $0 up|down|env|status|stop-node N|start-node N" >&2; exit 2 ;;
esac
