# shellcheck shell=bash
# Shared helpers for the e2e scripts: progress output and failure messages naming the step.
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=e2e/versions.env
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
