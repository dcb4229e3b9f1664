#!/usr/bin/env bash
# Build the local Kubernetes testbed binaries from pinned upstream Go modules (no Docker) and
# cache them under ${VITPIPELINE_CACHE:-$HOME/.cache/vitpipeline}/testbed/<piece>-<version>/.
# A binary already in the cache is never rebuilt, so a second run is a few seconds.
#
#   tests/testbed/build.sh            # build whatever is missing
#   GO=/path/to/go tests/testbed/build.sh
#
# Pins live in tests/testbed/versions.env (also read by tests/testbed/paths.py).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

CACHE_ROOT="${VITPIPELINE_CACHE:-$HOME/.cache/vitpipeline}/testbed"
if [[ -z "${GO:-}" ]]; then
    GO="$(command -v go || true)"
    [[ -n "$GO" ]] || GO=/usr/local/go/bin/go
fi
[[ -x "$GO" ]] || { echo "build.sh: no Go toolchain (set GO=/path/to/go)" >&2; exit 1; }

# Never let a module's toolchain line trigger a toolchain download; static binaries.
export GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf '[testbed %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'build.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# Fail loudly if the committed wrapper modules drifted from versions.env.
check_pin() {  # file, "module version" that must appear as a requirement/replacement
    grep -qE -- "(^|[[:space:]])$2([[:space:]]|\$)" "$1" \
        || die "$1 does not contain '$2' (out of sync with versions.env)"
}
check_pin "$HERE/kubernetes/go.mod" "k8s.io/kubernetes $KUBERNETES_VERSION"
check_pin "$HERE/kubernetes/go.mod" "k8s.io/api => k8s.io/api $KUBERNETES_STAGING_VERSION"
check_pin "$HERE/etcd/go.mod" "go.etcd.io/etcd/server/v3 $ETCD_VERSION"
if grep -E '=> k8s\.io/[a-z-]+ v' "$HERE/kubernetes/go.mod" | grep -vqF " $KUBERNETES_STAGING_VERSION"; then
    die "kubernetes/go.mod has a staging replace not at $KUBERNETES_STAGING_VERSION"
fi

TMPDIRS=()
cleanup() { local d; for d in "${TMPDIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

# install_bins <dest bin dir> <tmp dir with built binaries> <names...>: atomic-ish move into place.
install_bins() {
    local dest="$1" src="$2"; shift 2
    mkdir -p "$dest"
    local n
    for n in "$@"; do
        [[ -x "$src/$n" ]] || die "expected built binary $src/$n is missing"
        mv -f "$src/$n" "$dest/$n"
    done
}

missing() {  # <bin dir> <names...> -> prints the names that are not cached
    local dir="$1"; shift
    local n
    for n in "$@"; do [[ -x "$dir/$n" ]] || echo "$n"; done
}

# --- kube-apiserver, kube-controller-manager, kubectl ---------------------------------------
build_kubernetes() {
    local dir="$CACHE_ROOT/kubernetes-$KUBERNETES_VERSION/bin"
    local want=(kube-apiserver kube-controller-manager kubectl)
    local todo
    mapfile -t todo < <(missing "$dir" "${want[@]}")
    if [[ ${#todo[@]} -eq 0 ]]; then log "kubernetes $KUBERNETES_VERSION: cached ($dir)"; return; fi
    log "kubernetes $KUBERNETES_VERSION: building ${todo[*]}"
    local v="${KUBERNETES_VERSION#v}" major minor
    major="${v%%.*}"; minor="${v#*.}"; minor="${minor%%.*}"
    local ld="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        ld+=" -X $pkg.gitTreeState=clean"
    done
    local tmp; tmp="$(mktemp -d "${TMPDIR:-/tmp}/testbed-kube.XXXXXX")"; TMPDIRS+=("$tmp")
    local pkgs=() n
    for n in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$n"); done
    (cd "$HERE/kubernetes" && "$GO" build -mod=readonly -trimpath -ldflags "$ld" -o "$tmp/" "${pkgs[@]}")
    install_bins "$dir" "$tmp" "${todo[@]}"
    "$dir/kube-apiserver" --version >&2
}

# --- etcd ------------------------------------------------------------------------------------
build_etcd() {
    local dir="$CACHE_ROOT/etcd-$ETCD_VERSION/bin"
    if [[ -x "$dir/etcd" ]]; then log "etcd $ETCD_VERSION: cached ($dir)"; return; fi
    log "etcd $ETCD_VERSION: building"
    local tmp; tmp="$(mktemp -d "${TMPDIR:-/tmp}/testbed-etcd.XXXXXX")"; TMPDIRS+=("$tmp")
    (cd "$HERE/etcd" && "$GO" build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
    install_bins "$dir" "$tmp" etcd
    "$dir/etcd" --version >&2
}

# --- helm --------------------------------------------------------------------------------------
build_helm() {
    local dir="$CACHE_ROOT/helm-$HELM_VERSION/bin"
    if [[ -x "$dir/helm" ]]; then log "helm $HELM_VERSION: cached ($dir)"; return; fi
    log "helm $HELM_VERSION: building"
    local tmp; tmp="$(mktemp -d "${TMPDIR:-/tmp}/testbed-helm.XXXXXX")"; TMPDIRS+=("$tmp")
    local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    # Like helm's Makefile: default .Capabilities.KubeVersion (helm template, lint) follows the
    # client-go helm is built against (client-go v0.X.Y -> Kubernetes 1.X).
    local modjson gomod cgo
    modjson="$(cd "$tmp" && "$GO" mod download -json "helm.sh/helm/v3@$HELM_VERSION")" \
        || die "go mod download helm.sh/helm/v3@$HELM_VERSION failed: $modjson"
    gomod="$(printf '%s\n' "$modjson" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    cgo="$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9][0-9]*\)\..*/\1/p' "$gomod" | head -n1)"
    [[ -n "$cgo" ]] || die "cannot find k8s.io/client-go in $gomod"
    local pkg
    for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$cgo"
    done
    # Outside any module so the go.mod of this repo (none) or a parent cannot interfere.
    (cd "$tmp" && GOBIN="$tmp" "$GO" install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
    install_bins "$dir" "$tmp" helm
    "$dir/helm" version --short >&2
}

# --- KubeRay CRDs --------------------------------------------------------------------------------
fetch_kuberay_crds() {
    local dest="$CACHE_ROOT/kuberay-$KUBERAY_VERSION/crds"
    if [[ -d "$dest" ]] && compgen -G "$dest/*.yaml" > /dev/null; then
        log "kuberay $KUBERAY_VERSION CRDs: cached ($dest)"; return
    fi
    log "kuberay $KUBERAY_VERSION CRDs: downloading"
    local tmp; tmp="$(mktemp -d "${TMPDIR:-/tmp}/testbed-kuberay.XXXXXX")"; TMPDIRS+=("$tmp")
    local json moddir
    json="$(cd "$tmp" && "$GO" mod download -json "github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION")" \
        || die "go mod download of kuberay ray-operator@$KUBERAY_VERSION failed: $json"
    moddir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -n "$moddir" && -d "$moddir/config/crd/bases" ]] || die "no config/crd/bases in kuberay module ($json)"
    mkdir -p "$tmp/crds"
    cp "$moddir"/config/crd/bases/*.yaml "$tmp/crds/"
    chmod 0644 "$tmp/crds/"*.yaml
    mkdir -p "$(dirname "$dest")"
    rm -rf "$dest"
    mv "$tmp/crds" "$dest"
    ls "$dest" >&2
}

start=$SECONDS
mkdir -p "$CACHE_ROOT"
build_etcd
build_helm
fetch_kuberay_crds
build_kubernetes
log "done in $((SECONDS - start))s; cache: $CACHE_ROOT"
