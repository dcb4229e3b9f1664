#!/usr/bin/env bash
# Build KubeRay's operator image from its Go module (no registry): the `manager` binary of
# github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION, static, in a FROM-scratch image
# tagged vitpipeline/kuberay-operator:$KUBERAY_VERSION. The binary is cached under
# ${VITPIPELINE_CACHE:-~/.cache/vitpipeline}/kuberay-operator-<version>/; an existing tag is reused.
# Prints the image tag on stdout; logs go to stderr.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
# shellcheck source=../../testbed/versions.env
source "$ROOT/tests/testbed/versions.env"
TAG="vitpipeline/kuberay-operator:$KUBERAY_VERSION"
CACHE="${VITPIPELINE_CACHE:-$HOME/.cache/vitpipeline}/kuberay-operator-$KUBERAY_VERSION"
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

log() { printf '[kuberay %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if docker image inspect "$TAG" >/dev/null 2>&1; then
    log "cached image $TAG"; echo "$TAG"; exit 0
fi

if [[ ! -x "$CACHE/manager" ]]; then
    start=$SECONDS
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    json=$(cd "$tmp" && "$GO" mod download -json "github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION")
    moddir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
    [[ -f "$moddir/main.go" ]] || { echo "kuberay build: no main.go in $moddir" >&2; exit 1; }
    log "building manager from $moddir"
    # The module is its own main module here; its go.sum pins every dependency.
    (cd "$moddir" && nice "$GO" build -trimpath -ldflags "-s -w" -o "$tmp/manager" .)
    mkdir -p "$CACHE" && mv "$tmp/manager" "$CACHE/manager"
    log "built in $((SECONDS - start))s"
fi

ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
cp "$CACHE/manager" "$ctx/manager"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
DOCKERFILE
docker build --quiet --tag "$TAG" "$ctx" >&2
log "image $TAG ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)"
echo "$TAG"
