#!/usr/bin/env bash
# Container images for the local cluster, built with buildah (no registry, no Docker engine):
#   base     a Debian bookworm rootfs (debootstrap --variant=minbase, from the Debian mirror in
#            /etc/apt/sources.list*) carrying python3 + venv, committed as $BASE_IMAGE_NAME
#   pause    the sandbox image: the static pause binary from e2e/build.sh, FROM scratch
#   project  the repo's Dockerfile built with --build-arg BASE_IMAGE=$BASE_IMAGE_NAME
#   import   load pause + project archives into containerd's k8s.io namespace
# Archives are cached in $NEPTUNE_CACHE/images (the project one keyed by a hash of its sources).
#
# Usage: e2e/image.sh base|pause|project|import|all
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

REPO_DIR=$(cd "$E2E_DIR/.." && pwd)
IMAGES="$NEPTUNE_CACHE/images"
BASE_IMAGE_NAME=${BASE_IMAGE_NAME:-localhost/neptune-base:bookworm-python}
PAUSE_IMAGE=${PAUSE_IMAGE:-localhost/neptune/pause:$PAUSE_VERSION}
NEPTUNE_IMAGE=${NEPTUNE_IMAGE:-localhost/neptune-k8s:dev}
# A second name for the same image, so that e2e tests can change spec.image and see pods roll.
NEPTUNE_IMAGE_ALT=${NEPTUNE_IMAGE_ALT:-${NEPTUNE_IMAGE%:*}:dev-alt}
CTR_SOCK=${CTR_SOCK:-$RUN/containerd.sock}

debian_mirror() { # first Debian URI configured for apt on this machine
    local m
    m=$(grep -hoE '^(URIs:|deb)\s+\S+' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
    printf '%s' "${m:-http://deb.debian.org/debian}"
}

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

build_base() {
    need_root
    command -v buildah >/dev/null || die "buildah missing (apt-get install buildah)"
    if have_image "$BASE_IMAGE_NAME"; then log "base image $BASE_IMAGE_NAME: present"; return; fi
    mkdir -p "$IMAGES"
    local tarball="$IMAGES/bookworm-python-rootfs.tar"
    if [ ! -f "$tarball" ]; then
        command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"
        local mirror root="$IMAGES/rootfs.tmp"; mirror=$(debian_mirror)
        step "base: debootstrap --variant=minbase bookworm from $mirror (a few minutes)"
        rm -rf "$root"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$root" "$mirror" >"$IMAGES/debootstrap.log" 2>&1 \
            || { tail -20 "$IMAGES/debootstrap.log" >&2; die "debootstrap failed (log $IMAGES/debootstrap.log)"; }
        step "base: trim and pack the rootfs"
        chroot "$root" apt-get clean
        rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
            "$root"/usr/share/locale/* "$root"/var/cache/debconf/*-old "$root"/var/log/*.log
        tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$root"
    fi
    step "base: buildah commit $BASE_IMAGE_NAME"
    local c; c=$(buildah from scratch)
    buildah add --quiet "$c" "$tarball" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd python3 \
        --label org.opencontainers.image.description="Debian bookworm minbase + python3 (made locally by e2e/image.sh)" "$c"
    buildah commit --quiet --rm "$c" "$BASE_IMAGE_NAME" >/dev/null
    log "    base image $BASE_IMAGE_NAME: $(buildah images --format '{{.Size}}' "$BASE_IMAGE_NAME" 2>/dev/null || echo ?)"
}

build_pause() {
    need_root
    local archive="$IMAGES/pause-$PAUSE_VERSION.tar"
    [ -f "$archive" ] && { log "pause image archive: cached"; return; }
    [ -x "$K8S_BIN/pause" ] || "$E2E_DIR/build.sh" all
    step "pause image $PAUSE_IMAGE (FROM scratch)"
    mkdir -p "$IMAGES"
    local c; c=$(buildah from scratch)
    buildah copy --quiet "$c" "$(readlink -f "$K8S_BIN/pause")" /pause >/dev/null
    buildah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
    buildah commit --quiet --rm "$c" "$PAUSE_IMAGE" >/dev/null
    buildah push --quiet "$PAUSE_IMAGE" "docker-archive:$archive.tmp:$PAUSE_IMAGE"
    mv "$archive.tmp" "$archive"
}

source_hash() { # hash of everything the Dockerfile copies
    (cd "$REPO_DIR" && find Dockerfile .dockerignore pyproject.toml executor_image operator \
        -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*.so' ! -path '*.egg-info*' 2>/dev/null \
        | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
}

PROJECT_ARCHIVE="$IMAGES/neptune-k8s.tar"   # the last built; its source hash in .hash

build_project() {
    need_root
    [ -f "$REPO_DIR/Dockerfile" ] || die "no Dockerfile in $REPO_DIR"
    local archive=$PROJECT_ARCHIVE hash; hash=$(source_hash)
    if [ -f "$archive" ] && [ "$(cat "$archive.hash" 2>/dev/null)" = "$hash" ]; then
        log "project image archive: cached (sources unchanged, $hash)"; return
    fi
    build_base
    step "project image $NEPTUNE_IMAGE: buildah bud (BASE_IMAGE=$BASE_IMAGE_NAME)"
    local extra=()
    # Behind a TLS-inspecting proxy pip needs the host's CA bundle: mount it for RUN steps only.
    local ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
    if [ -f "$ca" ]; then extra+=(-v "$ca:/etc/neptune-build-ca.crt:ro" --build-arg PIP_CERT=/etc/neptune-build-ca.crt); fi
    if [ -n "${PIP_INDEX_URL:-}" ]; then extra+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL"); fi
    buildah bud --layers --pull-never --build-arg "BASE_IMAGE=$BASE_IMAGE_NAME" "${extra[@]}" \
        -t "$NEPTUNE_IMAGE" -f "$REPO_DIR/Dockerfile" "$REPO_DIR" >"$IMAGES/project-build.log" 2>&1 \
        || { tail -30 "$IMAGES/project-build.log" >&2; die "buildah bud failed (log $IMAGES/project-build.log)"; }
    step "project image: export to $archive"
    rm -f "$archive.tmp"
    buildah push --quiet "$NEPTUNE_IMAGE" "docker-archive:$archive.tmp:$NEPTUNE_IMAGE"
    mv "$archive.tmp" "$archive"
    echo "$hash" >"$archive.hash"
    buildah rmi --prune >/dev/null 2>&1 || true   # dangling layers of earlier builds
}

ctr_k8s() { ctr --address "$CTR_SOCK" --namespace k8s.io "$@"; }

import_images() {
    [ -S "$CTR_SOCK" ] || die "containerd is not running (socket $CTR_SOCK); run make cluster-up"
    local a
    for a in "$IMAGES/pause-$PAUSE_VERSION.tar" "$PROJECT_ARCHIVE"; do
        [ -f "$a" ] || { log "    (no $(basename "$a") to import)"; continue; }
        step "import $(basename "$a") into containerd (k8s.io)"
        ctr_k8s images import "$a" >/dev/null \
            || die "ctr images import $a failed"
    done
    if [ -f "$PROJECT_ARCHIVE" ]; then
        ctr_k8s images tag --force "$NEPTUNE_IMAGE" "$NEPTUNE_IMAGE_ALT" >/dev/null \
            || die "ctr images tag $NEPTUNE_IMAGE $NEPTUNE_IMAGE_ALT failed"
    fi
    ctr_k8s images ls -q | grep -E 'localhost/' | sed 's/^/    /' >&2 || true
}

case "${1:-all}" in
    base) build_base ;;
    pause) build_pause ;;
    project) build_project ;;
    import) import_images ;;
    all) build_pause; build_project; [ -S "$CTR_SOCK" ] && import_images ;;
    name) printf '%s\n' "$NEPTUNE_IMAGE" ;;
    *) echo "usage: $0 base|pause|project|import|all|name" >&2; exit 2 ;;
esac
CURRENT_STEP="(finished)"
