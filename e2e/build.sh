#!/usr/bin/env bash
# Build, once, the binaries the local cluster needs, from Go modules (no prebuilt downloads),
# and cache them outside the repo keyed by version:
#   $NEPTUNE_CACHE/kubernetes-$K8S_VERSION/  kube-apiserver kube-controller-manager
#                                           kube-scheduler kubelet kube-proxy kubectl
#   $NEPTUNE_CACHE/etcd-$ETCD_VERSION/       etcd
#   $NEPTUNE_CACHE/helm-$HELM_VERSION/       helm
#   $NEPTUNE_CACHE/pause-$PAUSE_VERSION/     pause (static C binary for the sandbox image)
#   $NEPTUNE_CACHE/coredns-$COREDNS_VERSION/ coredns (cluster DNS, run as a host process)
#   $NEPTUNE_CACHE/prometheus-$PROMETHEUS_VERSION/ prometheus (Debian's 2.42 is built without
#                                           kubernetes_sd_configs, so it is built from its module)
#   $NEPTUNE_CACHE/kube-router-$KUBE_ROUTER_VERSION/ kube-router (NetworkPolicy firewall of the
#                                           multi-node mode; built by `multinode` only)
# and a combined directory of symlinks: $NEPTUNE_CACHE/$K8S_VERSION/bin  (= NEPTUNE_K8S_BIN).
#
# Usage: e2e/build.sh [all|controlplane|multinode]   (controlplane = etcd, kube-apiserver, kubectl;
#        multinode = all + kube-router)
# Env: NEPTUNE_CACHE, K8S_VERSION, ETCD_VERSION, HELM_VERSION, BUILD_JOBS (go build -p, default 2)
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

WHAT=${1:-all}
JOBS=${BUILD_JOBS:-2}
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0

step "check prerequisites"
command -v go >/dev/null || die "go not found (Go >= 1.24 needed; Go 1.26 tested)"
command -v gcc >/dev/null || die "gcc not found (apt-get install gcc libc6-dev) for the pause binary"
mkdir -p "$NEPTUNE_CACHE" "$K8S_BIN"
exec 9>"$NEPTUNE_CACHE/.build.lock"
if ! flock -n 9; then log "another build holds $NEPTUNE_CACHE/.build.lock; waiting"; flock 9; fi

K8S_OUT="$NEPTUNE_CACHE/kubernetes-$K8S_VERSION"
ETCD_OUT="$NEPTUNE_CACHE/etcd-$ETCD_VERSION"
PAUSE_OUT="$NEPTUNE_CACHE/pause-$PAUSE_VERSION"
SRC="$NEPTUNE_CACHE/src"

link() { ln -sfn "$1" "$K8S_BIN/$(basename "$1")"; }

timed() { # timed NAME CMD...: run CMD, report its duration
    local name=$1 t=$SECONDS; shift
    "$@"
    log "    $name done in $(( SECONDS - t ))s"
}

build_etcd() {
    if [ -x "$ETCD_OUT/etcd" ]; then link "$ETCD_OUT/etcd"; return; fi
    step "etcd $ETCD_VERSION: wrapper module"
    local w="$SRC/etcd-$ETCD_VERSION"
    mkdir -p "$w" "$ETCD_OUT"
    cat >"$w/go.mod" <<MOD
module neptune.local/etcd-build

go 1.24.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
    cat >"$w/main.go" <<'GO'
// Command etcd: the upstream etcd main (go.etcd.io/etcd/v3/main.go) over the server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    step "etcd $ETCD_VERSION: go mod tidy"
    (cd "$w" && go mod tidy) || die "go mod tidy of the etcd wrapper failed"
    step "etcd $ETCD_VERSION: go build"
    (cd "$w" && timed etcd go build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$ETCD_OUT/etcd.tmp" .) \
        || die "go build of etcd failed"
    mv "$ETCD_OUT/etcd.tmp" "$ETCD_OUT/etcd"
    link "$ETCD_OUT/etcd"
}

K8S_WRAPPER="$SRC/kubernetes-$K8S_VERSION"
k8s_wrapper() {
    [ -f "$K8S_WRAPPER/go.sum" ] && [ -f "$K8S_WRAPPER/.tidy-ok" ] && return 0
    step "kubernetes $K8S_VERSION: wrapper module (replace every staging module)"
    mkdir -p "$K8S_WRAPPER"
    local staging_ver="v0.${K8S_VERSION#v1.}" modfile="$K8S_WRAPPER/kubernetes.mod"
    # Read the list of staging modules from k8s.io/kubernetes's own go.mod.
    (cd "$K8S_WRAPPER" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null 2>&1) || true
    local gomod
    gomod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
    [ -f "$gomod" ] || { mkdir -p "$K8S_WRAPPER/tmp" && (cd "$K8S_WRAPPER/tmp" && printf 'module x\n' >go.mod && go mod download "k8s.io/kubernetes@$K8S_VERSION"); }
    [ -f "$gomod" ] || die "could not fetch go.mod of k8s.io/kubernetes@$K8S_VERSION"
    cp "$gomod" "$modfile"
    {
        printf 'module neptune.local/kubernetes-build\n\ngo 1.24.0\n\n'
        grep -E '^godebug' "$modfile" || true
        printf '\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
        grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$modfile" \
            | awk -v v="$staging_ver" '{print "\t" $1 " => " $1 " " v}'
        printf ')\n'
    } >"$K8S_WRAPPER/go.mod"
    log "    $(grep -c '=> k8s.io' "$K8S_WRAPPER/go.mod") staging modules pinned to $staging_ver"
    cat >"$K8S_WRAPPER/tools.go" <<'GO'
//go:build tools

// Package tools records the commands this wrapper module builds, so go mod tidy keeps them.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
    step "kubernetes $K8S_VERSION: go mod tidy (downloads the module graph)"
    (cd "$K8S_WRAPPER" && timed tidy go mod tidy) || die "go mod tidy of the kubernetes wrapper failed"
    touch "$K8S_WRAPPER/.tidy-ok"
}

k8s_ldflags() {
    local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
    local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    local f="-s -w" p
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        f+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
        f+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
    done
    printf '%s' "$f"
}

build_k8s() { # build_k8s CMD...
    local cmd todo=()
    mkdir -p "$K8S_OUT"
    for cmd in "$@"; do
        if [ -x "$K8S_OUT/$cmd" ]; then link "$K8S_OUT/$cmd"; else todo+=("$cmd"); fi
    done
    [ "${#todo[@]}" -eq 0 ] && return 0
    k8s_wrapper
    for cmd in "${todo[@]}"; do
        step "kubernetes $K8S_VERSION: go build $cmd (-p $JOBS)"
        (cd "$K8S_WRAPPER" && timed "$cmd" go build -p "$JOBS" -trimpath -ldflags "$(k8s_ldflags)" \
            -o "$K8S_OUT/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd") || die "go build of $cmd failed"
        mv "$K8S_OUT/$cmd.tmp" "$K8S_OUT/$cmd"
        link "$K8S_OUT/$cmd"
    done
}

# go_install NAME VERSION PACKAGE LDFLAGS: `go install PACKAGE@VERSION` into the cache, once.
go_install() {
    local name=$1 version=$2 package=$3 ldflags=$4
    local out="$NEPTUNE_CACHE/$name-$version"
    if [ -x "$out/$name" ]; then link "$out/$name"; return; fi
    step "$name $version: go install $package"
    mkdir -p "$out"
    (cd "$NEPTUNE_CACHE" && GOBIN="$out" timed "$name" go install -p "$JOBS" -trimpath \
        -ldflags "-s -w $ldflags" "$package@$version") || die "go install of $name failed"
    link "$out/$name"
}

build_helm() {
    go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
        "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
}

build_coredns() {
    go_install coredns "$COREDNS_VERSION" github.com/coredns/coredns ""
}

build_prometheus() {
    local v=github.com/prometheus/common/version
    go_install prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus \
        "-X $v.Version=$PROMETHEUS_VERSION -X $v.Branch=module -X $v.BuildUser=neptune-e2e"
}

build_kube_router() { # the firewall (NetworkPolicy) controller of e2e/multinode.sh
    local v=github.com/cloudnativelabs/kube-router/v2/pkg/version
    go_install kube-router "$KUBE_ROUTER_VERSION" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
        "-X $v.Version=$KUBE_ROUTER_VERSION -X $v.BuildDate=module"
}

build_pause() {
    if [ -x "$PAUSE_OUT/pause" ]; then link "$PAUSE_OUT/pause"; return; fi
    step "pause $PAUSE_VERSION: gcc -static"
    mkdir -p "$PAUSE_OUT"
    gcc -static -O2 -Wall -o "$PAUSE_OUT/pause.tmp" "$E2E_DIR/pause/pause.c" \
        || die "gcc -static failed (apt-get install gcc libc6-dev)"
    mv "$PAUSE_OUT/pause.tmp" "$PAUSE_OUT/pause"
    link "$PAUSE_OUT/pause"
}

build_all() {
    build_pause
    build_etcd
    build_k8s kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy
    build_helm
    build_coredns
    build_prometheus
}

T_ALL=$SECONDS
case "$WHAT" in
    controlplane) build_etcd; build_k8s kube-apiserver kubectl ;;
    all) build_all ;;
    multinode) build_all; build_kube_router ;;
    *) die "usage: $0 [all|controlplane|multinode]" ;;
esac
CURRENT_STEP="(finished)"
if [ $(( SECONDS - T_ALL )) -gt 5 ]; then
    log "build ($WHAT) complete in $(( SECONDS - T_ALL ))s; binaries in $K8S_BIN:"
    ls -l "$K8S_BIN" >&2
else
    log "build ($WHAT): all cached in $K8S_BIN"
fi
