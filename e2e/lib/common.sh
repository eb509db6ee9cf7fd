# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source this file
# Shared helpers for the e2e scripts: progress output and failure messages naming the step.
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../versions.env
. "$E2E_DIR/versions.env"
K8S_BIN="$NEPTUNE_CACHE/$K8S_VERSION/bin"
CURRENT_STEP="(start)"
_T0=$(date +%s)

log() { printf '[%s %4ss] %s\n' "$(date -u +%H:%M:%S)" "$(( $(date +%s) - _T0 ))" "$*" >&2; }
step() { CURRENT_STEP="$*"; log "==> $*"; }
die() { log "FAILED at step: $CURRENT_STEP: $*"; exit 1; }
_on_err() {
    local rc=$?
    log "FAILED at step: $CURRENT_STEP (exit $rc, line ${BASH_LINENO[0]} of ${BASH_SOURCE[1]:-?})"
    exit "$rc"
}
trap _on_err ERR

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

# ---- layout of the state directory (outside the repo) -------------------------------------
PKI="$NEPTUNE_STATE/pki"
RUN="$NEPTUNE_STATE/run"
LOGS="$NEPTUNE_STATE/logs"
KUBECONFIG_ADMIN="$NEPTUNE_STATE/admin.kubeconfig"
APISERVER_PORT=${APISERVER_PORT:-6443}
ETCD_PORT=${ETCD_PORT:-2379}
SERVICE_CIDR=${SERVICE_CIDR:-10.96.0.0/12}
SERVICE_IP=${SERVICE_IP:-10.96.0.1}
POD_CIDR=${POD_CIDR:-10.244.0.0/24}
POD_GATEWAY=${POD_GATEWAY:-10.244.0.1}
CLUSTER_DOMAIN=cluster.local
NODE_NAME=${NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}

host_ip() { # the address the API server advertises (source address of the default route)
    local ip
    ip=$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="src"){print $(i+1); exit}}')
    [ -n "$ip" ] || ip=$(ip -4 -o addr show scope global | awk '{sub(/\/.*/,"",$4); print $4; exit}')
    [ -n "$ip" ] || die "no non-loopback IPv4 address found for the API server to advertise"
    printf '%s' "$ip"
}

# ---- processes: started detached, pid in $RUN/NAME.pid, log in $LOGS/NAME.log --------------
# NAME.pid holds the pid and, on line 2, the program path: a pid reused by another program
# (after a reboot or a killed session) does not count as running.
pid_of() { head -n1 "$RUN/$1.pid" 2>/dev/null; }
is_running() {
    local f="$RUN/$1.pid" pid exe
    [ -f "$f" ] || return 1
    pid=$(head -n1 "$f"); exe=$(sed -n 2p "$f")
    kill -0 "$pid" 2>/dev/null || return 1
    # a zombie (killed, not yet reaped by init) is not running
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
    [ -z "$exe" ] || tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1 | grep -qF "$exe"
}

start_proc() { # start_proc NAME CMD...   (no-op when already running)
    # With NETNS=NAME set: CMD runs in that network namespace (ip netns), nothing else of it
    # (nsenter --net execs CMD, so the pid and the program recorded are CMD's own).
    local name=$1 netns=(); shift
    if is_running "$name"; then log "    $name already running (pid $(pid_of "$name"))"; return 0; fi
    mkdir -p "$RUN" "$LOGS"
    if [ -n "${NETNS:-}" ]; then netns=(nsenter "--net=/run/netns/$NETNS" --); fi
    setsid "${netns[@]}" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    printf '%s\n%s\n' "$!" "$1" >"$RUN/$name.pid"
    log "    $name started (pid $!, log $LOGS/$name.log)"
}

stop_proc() { # stop_proc NAME: SIGTERM, wait up to 15 s, then SIGKILL
    local name=$1 f="$RUN/$1.pid" pid i
    [ -f "$f" ] || return 0
    pid=$(pid_of "$name")
    if is_running "$name"; then
        log "    stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$f"
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...: poll CMD every second
    # With WATCH="proc1 proc2", fail at once when one of those processes died.
    local secs=$1 what=$2 i p; shift 2
    for i in $(seq 1 "$secs"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        for p in ${WATCH:-}; do check_alive "$p"; done
        [ $(( i % 15 )) -eq 0 ] && log "    still waiting for $what (${i}s)"
        sleep 1
    done
    die "timed out after ${secs}s waiting for $what"
}

check_alive() { # check_alive NAME: fail with the tail of its log when it died
    is_running "$1" && return 0
    # just started, it may not have exec'd its program yet (is_running checks the command line)
    sleep 1
    is_running "$1" && return 0
    log "$1 is not running; last lines of $LOGS/$1.log:"
    tail -n 25 "$LOGS/$1.log" >&2 || true
    die "$1 exited"
}

write_if_changed() { # write_if_changed FILE < content: keep the file (and its mtime) if equal
    local f=$1 tmp; tmp=$(mktemp "$f.XXXXXX")
    cat >"$tmp"
    if [ -f "$f" ] && cmp -s "$tmp" "$f"; then rm -f "$tmp"; else mv "$tmp" "$f"; fi
}

kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
