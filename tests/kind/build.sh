#!/usr/bin/env bash
# Build an air-gapped kind test bed: the kind binary and a node image
# vitpipeline/kind-node:<KUBERNETES_VERSION>-<recipe hash> that needs no image registry.
# Everything comes from package registries only: Go modules (kind, Kubernetes, containerd,
# crictl, CoreDNS, etcd) and Debian packages (root file system, systemd, runc, CNI plugins).
#
#   tests/kind/build.sh          # prints the node image tag on stdout; logs go to stderr
#   tests/kind/build.sh kind     # only the kind binary; prints its path
#
# Why not `kind build node-image`: it always pulls etcd, CoreDNS, pause, kindnetd and
# local-path-provisioner from registries. So the node image is assembled here the same way
# kind does it (base files from kind's module, binaries in /usr/bin, component images imported
# into the node's containerd), minus kindnetd (a static CNI config instead, see node/) and
# local-path-provisioner.
#
# Every build output is cached under ${VITPIPELINE_CACHE:-$HOME/.cache/vitpipeline}/kind/
# in a directory named after its pin (e.g. containerd-v2.3.4/bin); a cached piece is never
# rebuilt (delete its directory to force it). Docker images are tagged by content hash and
# reused while the tag exists. Needs root (debootstrap), Docker, Go >= 1.26, gcc, debootstrap.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

CACHE="${VITPIPELINE_CACHE:-$HOME/.cache/vitpipeline}/kind"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
# Never download a toolchain; static binaries (they run inside the node and in scratch images).
export GOTOOLCHAIN=local CGO_ENABLED=0
GOBUILD=(nice -n 10 "$GO" build -trimpath)
NODE_REPO=vitpipeline/kind-node
ROOTFS_REPO=vitpipeline/kind-rootfs
# Debian packages of the node root file system. kind's base image list, minus nfs/iscsi/curl and
# fuse-overlayfs (rootless only), plus runc and the CNI plugins (kind builds both from source).
ROOTFS_PACKAGES=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod
ROOTFS_PACKAGES+=,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,jq,procps,socat,ebtables
ROOTFS_PACKAGES+=,runc,containernetworking-plugins

log() { printf '[kind-build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'tests/kind/build.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[[ -x "$GO" ]] || die "no Go toolchain (set GO=/path/to/go)"
docker info >/dev/null 2>&1 || die "Docker is not running (bash images/docker-up.sh)"

# The Kubernetes pin must agree with tests/testbed and with the wrapper module.
testbed_k8s="$(sed -n 's/^KUBERNETES_VERSION=//p' "$REPO_ROOT/tests/testbed/versions.env")"
[[ "$testbed_k8s" == "$KUBERNETES_VERSION" ]] \
    || die "KUBERNETES_VERSION $KUBERNETES_VERSION != tests/testbed/versions.env ($testbed_k8s)"
grep -qE "k8s.io/kubernetes $KUBERNETES_VERSION( //.*)?\$" "$HERE/kubernetes/go.mod" \
    || die "kubernetes/go.mod does not require k8s.io/kubernetes $KUBERNETES_VERSION"
grep -qE "github.com/coredns/coredns $COREDNS_VERSION( //.*)?\$" "$HERE/coredns/go.mod" \
    || die "coredns/go.mod does not require github.com/coredns/coredns $COREDNS_VERSION"

# All scratch space lives in one directory, removed on exit (mktmp runs in $(...) subshells, so
# it cannot register directories with the parent shell itself).
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/vitp-kind.XXXXXX")"
BUILD_CONTAINER=""
STAGE_IMAGE=""
cleanup() {
    [[ -z "$BUILD_CONTAINER" ]] || docker rm -f "$BUILD_CONTAINER" >/dev/null 2>&1 || true
    [[ -z "$STAGE_IMAGE" ]] || docker rmi "$STAGE_IMAGE" >/dev/null 2>&1 || true
    # debootstrap may leave proc/sys mounted in its target.
    grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
# docker build with the classic builder (no buildx on this host), minus its deprecation banner.
dbuild() {
    DOCKER_BUILDKIT=0 docker build -q "$@" >/dev/null \
        2> >(grep -v -e 'DEPRECATED: The legacy builder' -e 'BuildKit is currently disabled' \
                     -e 'environment-variable\.' -e '^$' >&2)
}
mktmp() { mktemp -d "$WORK/XXXXXX"; }

# cached <dir> <names...>: true if every named binary is in <dir>/bin.
cached() { local dir="$1" n; shift; for n in "$@"; do [[ -x "$dir/bin/$n" ]] || return 1; done; }
# publish <tmp bin dir> <cache dir>: move a finished bin dir into place in one rename.
publish() { mkdir -p "$2"; rm -rf "$2/bin"; mv "$1" "$2/bin"; }
moddir() {  # <module@version> -> its directory in the module cache (downloads if needed)
    (cd "$(mktmp)" && "$GO" mod download -json "$1") | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

# --- Go binaries --------------------------------------------------------------------------------
build_kind() {
    local dir="$CACHE/kind-$KIND_VERSION"
    if cached "$dir" kind; then log "kind $KIND_VERSION: cached"; return; fi
    log "kind $KIND_VERSION: building"
    local tmp; tmp="$(mktmp)"
    (cd "$tmp" && GOBIN="$tmp/bin" nice -n 10 "$GO" install -trimpath -ldflags "-s -w" \
        "sigs.k8s.io/kind@$KIND_VERSION")
    publish "$tmp/bin" "$dir"
}

KUBE_BINS=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
build_kubernetes() {
    local dir="$CACHE/kubernetes-$KUBERNETES_VERSION"
    if cached "$dir" "${KUBE_BINS[@]}"; then log "kubernetes $KUBERNETES_VERSION: cached"; return; fi
    log "kubernetes $KUBERNETES_VERSION: building ${KUBE_BINS[*]} (cold: ~15 min on 2 cores)"
    # Same flags as tests/testbed/build.sh, so its Go build cache is reused. Without the -X
    # version the binaries say v0.0.0-master and kubeadm refuses to run.
    local v="${KUBERNETES_VERSION#v}" ld="-s -w" pkg
    local major="${v%%.*}" minor="${v#*.}"; minor="${minor%%.*}"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        ld+=" -X $pkg.gitTreeState=clean"
    done
    local tmp pkgs=() n; tmp="$(mktmp)"
    for n in "${KUBE_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$n"); done
    (cd "$HERE/kubernetes" && "${GOBUILD[@]}" -mod=readonly -ldflags "$ld" -o "$tmp/bin/" "${pkgs[@]}")
    "$tmp/bin/kubeadm" version -o short >&2
    publish "$tmp/bin" "$dir"
}

build_containerd() {
    local dir="$CACHE/containerd-$CONTAINERD_VERSION" bins=(containerd containerd-shim-runc-v2 ctr)
    if cached "$dir" "${bins[@]}"; then log "containerd $CONTAINERD_VERSION: cached"; return; fi
    log "containerd $CONTAINERD_VERSION: building"
    local tmp m=github.com/containerd/containerd/v2; tmp="$(mktmp)"
    local ld="-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Package=$m"
    # The tags drop the snapshotters that need cgo or are unused in a kind node (as kind does).
    (cd "$tmp" && GOBIN="$tmp/bin" nice -n 10 "$GO" install -trimpath -ldflags "$ld" \
        -tags "no_btrfs no_devmapper no_zfs no_aufs" \
        "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
        "$m/cmd/ctr@$CONTAINERD_VERSION")
    "$tmp/bin/containerd" --version >&2
    publish "$tmp/bin" "$dir"
}

build_crictl() {
    local dir="$CACHE/cri-tools-$CRI_TOOLS_VERSION"
    if cached "$dir" crictl; then log "crictl $CRI_TOOLS_VERSION: cached"; return; fi
    log "crictl $CRI_TOOLS_VERSION: building"
    local tmp; tmp="$(mktmp)"
    (cd "$tmp" && GOBIN="$tmp/bin" nice -n 10 "$GO" install -trimpath \
        -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" \
        "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION")
    publish "$tmp/bin" "$dir"
}

build_coredns() {
    local dir="$CACHE/coredns-$COREDNS_VERSION"
    if cached "$dir" coredns; then log "coredns $COREDNS_VERSION: cached"; return; fi
    log "coredns $COREDNS_VERSION: building"
    local tmp; tmp="$(mktmp)"
    (cd "$HERE/coredns" && "${GOBUILD[@]}" -mod=readonly -ldflags "-s -w" -o "$tmp/bin/coredns" .)
    "$tmp/bin/coredns" -version >&2
    publish "$tmp/bin" "$dir"
}

build_etcd() {
    local dir="$CACHE/etcd-$ETCD_VERSION"
    if cached "$dir" etcd; then log "etcd $ETCD_VERSION: cached"; return; fi
    log "etcd $ETCD_VERSION: building from tests/testbed/etcd (read-only use of its module)"
    grep -qE "go.etcd.io/etcd/server/v3 $ETCD_VERSION( //.*)?\$" "$REPO_ROOT/tests/testbed/etcd/go.mod" \
        || die "tests/testbed/etcd/go.mod is not at etcd $ETCD_VERSION"
    local tmp; tmp="$(mktmp)"
    (cd "$REPO_ROOT/tests/testbed/etcd" && "${GOBUILD[@]}" -mod=readonly -ldflags "-s -w" -o "$tmp/bin/etcd" .)
    publish "$tmp/bin" "$dir"
}

build_pause() {
    local dir="$CACHE/pause-$PAUSE_VERSION"
    if cached "$dir" pause; then log "pause $PAUSE_VERSION: cached"; return; fi
    log "pause $PAUSE_VERSION: compiling pause.c from k8s.io/kubernetes@$KUBERNETES_VERSION"
    local src tmp; tmp="$(mktmp)"
    src="$(moddir "k8s.io/kubernetes@$KUBERNETES_VERSION")/build/pause/linux/pause.c"
    [[ -f "$src" ]] || die "no $src"
    mkdir -p "$tmp/bin"
    gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-vitpipeline" -o "$tmp/bin/pause" "$src"
    strip "$tmp/bin/pause"
    publish "$tmp/bin" "$dir"
}

# --- Debian root file system ----------------------------------------------------------------------
mirror_from_apt() {  # first URI of a deb822 stanza or sources.list line for $DEBIAN_SUITE
    local uri
    uri="$(awk -v suite="$DEBIAN_SUITE" '
        /^URIs:/ { u = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) s = 1 }
        /^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0 }
        END { if (u != "" && s) print u }' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
    [[ -n "$uri" ]] || uri="$(awk -v suite="$DEBIAN_SUITE" '$1 == "deb" && $0 ~ (" " suite " ") {
        for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
        /etc/apt/sources.list 2>/dev/null | head -n1)"
    [[ -n "$uri" ]] && echo "$uri"
}

ROOTFS_TAG=""
build_rootfs() {
    # Tag by the package list and this function's text, so a changed recipe means a new image.
    local hash; hash="$( { echo "$DEBIAN_SUITE $ROOTFS_PACKAGES"; declare -f build_rootfs; } \
        | sha256sum | cut -c1-12)"
    ROOTFS_TAG="$ROOTFS_REPO:$DEBIAN_SUITE-$hash"
    if docker image inspect "$ROOTFS_TAG" >/dev/null 2>&1; then log "rootfs: cached ($ROOTFS_TAG)"; return; fi
    local mirror; mirror="${DEBIAN_MIRROR:-$(mirror_from_apt)}" \
        || die "no $DEBIAN_SUITE mirror in apt sources; set DEBIAN_MIRROR"
    command -v debootstrap >/dev/null || die "debootstrap is not installed"
    local root; root="$(mktmp)"
    log "rootfs: debootstrap $DEBIAN_SUITE from $mirror (~3 min)"
    debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" "$DEBIAN_SUITE" "$root" "$mirror" \
        > "$root.debootstrap.log" 2>&1 || { tail -n 30 "$root.debootstrap.log" >&2; die "debootstrap failed"; }
    rm -f "$root.debootstrap.log"
    chroot "$root" apt-get clean
    # Trim like images/base/build-base.sh; systemd units pruned as in kind's base Dockerfile so
    # that only what a node needs starts in the container.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* \
           "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
           "$root"/usr/share/locale/* "$root"/tmp/* "$root"/var/tmp/*
    find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
    rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
          "$root"/lib/systemd/system/local-fs.target.wants/* \
          "$root"/lib/systemd/system/sockets.target.wants/*udev* \
          "$root"/lib/systemd/system/sockets.target.wants/*initctl* \
          "$root"/lib/systemd/system/basic.target.wants/*
    echo "ReadKMsg=no" >> "$root/etc/systemd/journald.conf"
    ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
    : > "$root/etc/hostname"; : > "$root/etc/resolv.conf"; : > "$root/etc/machine-id"
    tar --numeric-owner --xattrs -C "$root" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --message "debootstrap --variant=minbase $DEBIAN_SUITE + $ROOTFS_PACKAGES" - "$ROOTFS_TAG" >&2
    log "rootfs: built $ROOTFS_TAG"
}

# --- component images (what kubeadm would pull), saved as one docker-archive tar ----------------
# scratch_image <tag> <entrypoint binary path> <files...>: a one-layer image with the files in
# /usr/local/bin plus an empty /tmp, like the distroless upstream images (they run as root).
# If $SCRATCH_TREE names a directory, its contents go in too.
scratch_image() {
    local tag="$1" entry="$2" ctx f; shift 2
    ctx="$(mktmp)"; mkdir -p "$ctx/usr/local/bin" "$ctx/tmp" "$ctx/etc"; chmod 1777 "$ctx/tmp"
    [[ -z "${SCRATCH_TREE:-}" ]] || cp -a "$SCRATCH_TREE"/. "$ctx/"
    for f in "$@"; do install -m 0755 "$f" "$ctx/usr/local/bin/"; done
    echo 'root:x:0:0:root:/root:/sbin/nologin' > "$ctx/etc/passwd"
    tar --numeric-owner --owner=0 --group=0 -C "$ctx" -c . | docker import \
        --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "ENTRYPOINT [\"$entry\"]" - "$tag" >/dev/null
}

# netfilter_tree <dir>: iptables/ip6tables(-save,-restore) and nft from the root file system,
# with the libraries they and the xtables extensions load (~8 MB instead of the 166 MB rootfs).
netfilter_tree() {
    docker run --rm --entrypoint bash "$ROOTFS_TAG" -c '
        set -euo pipefail
        bins=(/usr/sbin/{iptables,ip6tables}{,-save,-restore} /usr/sbin/nft)
        xt=/usr/lib/x86_64-linux-gnu/xtables
        libs=$(ldd "${bins[@]}" "$xt"/*.so | awk "/=> \\// { print \$3 } /^\t\/lib64\// { print \$1 }" | sort -u)
        # --dereference: the alternatives symlinks become copies of the multi-call binaries.
        tar -c --dereference "${bins[@]}" $libs "$xt" /etc/ld.so.cache /etc/ethertypes 2>/dev/null' \
        | tar -x -C "$1"
    [[ -x "$1/usr/sbin/iptables-restore" && -e "$1/lib64/ld-linux-x86-64.so.2" ]] \
        || die "netfilter tools missing from the kube-proxy image tree"
}

build_component_images() {  # <output tar>
    local out="$1" k="$CACHE/kubernetes-$KUBERNETES_VERSION/bin" r=registry.k8s.io n
    local tags=()
    for n in kube-apiserver kube-controller-manager kube-scheduler; do
        scratch_image "$r/$n:$KUBERNETES_VERSION" "/usr/local/bin/$n" "$k/$n"; tags+=("$r/$n:$KUBERNETES_VERSION")
    done
    # kube-proxy runs iptables-restore & co. (and nft, to clean up nftables-mode leftovers).
    local nf; nf="$(mktmp)"; netfilter_tree "$nf"
    SCRATCH_TREE="$nf" scratch_image "$r/kube-proxy:$KUBERNETES_VERSION" /usr/local/bin/kube-proxy "$k/kube-proxy"
    tags+=("$r/kube-proxy:$KUBERNETES_VERSION")
    scratch_image "$r/etcd:${ETCD_VERSION#v}-0" /usr/local/bin/etcd "$CACHE/etcd-$ETCD_VERSION/bin/etcd"
    tags+=("$r/etcd:${ETCD_VERSION#v}-0")
    scratch_image "$r/coredns/coredns:$COREDNS_VERSION" /usr/local/bin/coredns \
        "$CACHE/coredns-$COREDNS_VERSION/bin/coredns"
    tags+=("$r/coredns/coredns:$COREDNS_VERSION")
    scratch_image "$r/pause:$PAUSE_VERSION" /usr/local/bin/pause "$CACHE/pause-$PAUSE_VERSION/bin/pause"
    tags+=("$r/pause:$PAUSE_VERSION")
    docker save -o "$out" "${tags[@]}"
    # Keep registry.k8s.io names out of the host's image list; the tar holds them now.
    docker rmi "${tags[@]}" >/dev/null
}

# --- node image ---------------------------------------------------------------------------------------
recipe_hash() {
    (cd "$HERE" && cat versions.env build.sh kubernetes/go.sum coredns/go.mod coredns/go.sum coredns/main.go \
        node/*; echo "$ROOTFS_TAG") | sha256sum | cut -c1-12
}

build_node_image() {
    local tag="$NODE_REPO:$KUBERNETES_VERSION-$(recipe_hash)"
    if docker image inspect "$tag" >/dev/null 2>&1; then log "node image: cached"; NODE_TAG="$tag"; return; fi
    log "node image: assembling $tag"
    local ctx k="$CACHE/kubernetes-$KUBERNETES_VERSION/bin" kindfiles
    ctx="$(mktmp)"
    kindfiles="$(moddir "sigs.k8s.io/kind@$KIND_VERSION")/images/base/files"
    [[ -d "$kindfiles" ]] || die "kind module has no images/base/files"
    # Overlay tree: kind's base files (entrypoint, systemd units, containerd config), then ours.
    mkdir -p "$ctx/root/usr/bin" "$ctx/root/usr/local/bin" "$ctx/root/kind/manifests" \
             "$ctx/root/etc/kubernetes/manifests" "$ctx/root/etc/cni/net.d" "$ctx/root/opt/cni"
    cp -r "$kindfiles"/. "$ctx/root/"
    # Module cache files are read-only; set modes here, as a RUN chmod would copy the files.
    chmod -R u+w,go-w,a+rX "$ctx/root"
    chmod 0755 "$ctx/root/usr/local/bin"/* "$ctx/root/kind/bin"/*
    cp "$k"/{kubeadm,kubelet,kubectl} "$ctx/root/usr/bin/"
    cp "$CACHE/containerd-$CONTAINERD_VERSION"/bin/* "$CACHE/cri-tools-$CRI_TOOLS_VERSION/bin/crictl" \
       "$ctx/root/usr/local/bin/"
    install -m 0755 "$HERE/node/vitp-entrypoint" "$ctx/root/usr/local/bin/vitp-entrypoint"
    install -m 0644 "$HERE/node/10-vitp-ptp.conflist" "$ctx/root/etc/cni/net.d/"
    install -m 0644 "$HERE/node/default-storage.yaml" "$ctx/root/kind/manifests/"
    echo "$KUBERNETES_VERSION" > "$ctx/root/kind/version"
    # Debian installs the CNI plugins in /usr/lib/cni; containerd looks in /opt/cni/bin.
    ln -s /usr/lib/cni "$ctx/root/opt/cni/bin"
    # containerd: kubeadm's pause tag as sandbox image; restrict_oom_score_adj because this
    # host's nodes lack CAP_SYS_RESOURCE (see bin/docker), so lowering oom_score_adj fails.
    sed -i -e "s|registry.k8s.io/pause:[0-9.]*|registry.k8s.io/pause:$PAUSE_VERSION|" \
           -e 's|restrict_oom_score_adj = false|restrict_oom_score_adj = true|' \
           "$ctx/root/etc/containerd/config.toml"
    grep -q "pause:$PAUSE_VERSION" "$ctx/root/etc/containerd/config.toml" || die "containerd config: no sandbox_image"
    cat > "$ctx/Dockerfile" <<EOF
FROM $ROOTFS_TAG
COPY root/ /
RUN /usr/local/bin/ctr oci spec \\
    | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
    | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service
# docker commit cannot set these; the build container (and so the commit) inherits them.
ENV container=docker
STOPSIGNAL SIGRTMIN+3
EOF
    log "node image: docker build (files)"
    STAGE_IMAGE="$tag-stage"
    dbuild -t "$STAGE_IMAGE" "$ctx"

    # Import the component images into the node's containerd, as kind's node-image build does:
    # run containerd in a container of the staged image, `ctr import`, stop it, commit.
    log "node image: building component images"
    build_component_images "$ctx/images.tar"
    BUILD_CONTAINER="vitp-kind-build-$$"
    # --init: something must reap containerd when it is stopped below.
    docker run -d --init --name "$BUILD_CONTAINER" --entrypoint sleep "$STAGE_IMAGE" infinity >/dev/null
    docker exec "$BUILD_CONTAINER" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
    docker exec "$BUILD_CONTAINER" bash -c 'for i in $(seq 50); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; cat /tmp/containerd.log; exit 1' \
        || die "containerd did not start in the build container"
    log "node image: ctr import"
    docker exec -i "$BUILD_CONTAINER" ctr --namespace=k8s.io images import --all-platforms --no-unpack \
        --label=io.cri-containerd.pinned=pinned - < "$ctx/images.tar" >/dev/null
    log "node image: imported $(docker exec "$BUILD_CONTAINER" ctr --namespace=k8s.io images list -q \
        2>/dev/null | grep -v '^sha256:' | tr '\n' ' ')"
    docker exec "$BUILD_CONTAINER" bash -c 'pkill containerd; while pgrep -x containerd >/dev/null; do sleep 0.2; done; rm -rf /tmp/* /run/containerd'
    docker commit \
        --change 'ENTRYPOINT ["/usr/local/bin/vitp-entrypoint", "/usr/local/bin/entrypoint", "/sbin/init"]' \
        --change 'CMD []' \
        "$BUILD_CONTAINER" "$tag" >/dev/null
    docker rm -f "$BUILD_CONTAINER" >/dev/null; BUILD_CONTAINER=""
    docker rmi "$STAGE_IMAGE" >/dev/null; STAGE_IMAGE=""
    NODE_TAG="$tag"
    # Drop node images of older recipes (1 GB each); `docker rmi` refuses those still in use.
    docker images --format '{{.Repository}}:{{.Tag}}' "$NODE_REPO" | grep -vxF "$tag" \
        | xargs -r docker rmi >/dev/null 2>&1 || true
    log "node image: built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

start=$SECONDS
mkdir -p "$CACHE"
build_kind
if [[ "${1:-}" == kind ]]; then  # `build.sh kind`: only the kind binary (for stock node images)
    echo "$CACHE/kind-$KIND_VERSION/bin/kind"; exit 0
fi
build_containerd
build_crictl
build_coredns
build_etcd
build_pause
build_kubernetes
build_rootfs
NODE_TAG=""
build_node_image
echo "$NODE_TAG" > "$CACHE/node-image"
log "done in $((SECONDS - start))s: $NODE_TAG (kind: $CACHE/kind-$KIND_VERSION/bin/kind)"
echo "$NODE_TAG"
