#!/usr/bin/env bash
# Build the offline base image vitpipeline/base:bookworm-<hash> with debootstrap (no image
# registry needed): Debian bookworm minbase + python3 (3.11), python3-venv, ca-certificates,
# bash and wget (KubeRay's default probes in Ray head/worker pods call wget).
#
# The Debian mirror is the one this machine's apt already uses (first bookworm `URIs:` entry in
# /etc/apt/sources.list.d/*.sources, else /etc/apt/sources.list); override with DEBIAN_MIRROR.
# The tag's hash covers this script, so the image is rebuilt only when the recipe changes;
# an existing tag is reused. Prints the tag on stdout (everything else goes to stderr).
# Needs root (debootstrap) and a running Docker engine (images/docker-up.sh).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates,bash,wget
REPO=${BASE_REPO:-vitpipeline/base}

log() { echo "build-base: $*" >&2; }

mirror_from_apt() {
    local f uri suites
    # deb822 sources: pick the URIs of a stanza whose Suites include the plain suite name.
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk -v suite="$SUITE" '
            function flush() { if (u != "" && (" " s " ") ~ (" " suite " ")) { print u; found = 1; exit } u = ""; s = "" }
            /^[[:space:]]*$/ { flush(); next }
            /^URIs:/ { u = $2 }
            /^Suites:/ { $1 = ""; s = $0 }
            END { if (!found) flush() }' "$f")
        if [ -n "$uri" ]; then echo "$uri"; return 0; fi
    done
    # One-line format: "deb [opts] URI SUITE COMPONENTS..."
    if [ -r /etc/apt/sources.list ]; then
        uri=$(awk -v suite="$SUITE" '$1 == "deb" {
                  i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                  if ($(i + 1) == suite) { print $i; exit } }' /etc/apt/sources.list)
        if [ -n "$uri" ]; then echo "$uri"; return 0; fi
    fi
    return 1
}

hash=$(sha256sum "$HERE/build-base.sh" | cut -c1-12)
TAG="$REPO:$SUITE-$hash"

if docker image inspect "$TAG" >/dev/null 2>&1; then
    log "cached: $TAG"
    echo "$TAG"
    exit 0
fi

MIRROR=${DEBIAN_MIRROR:-$(mirror_from_apt)} || { log "no $SUITE mirror in apt sources; set DEBIAN_MIRROR"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap missing: run images/docker-up.sh"; exit 1; }

ROOTFS=$(mktemp -d /var/tmp/vitp-base.XXXXXX)
cleanup() {
    # Unmount anything debootstrap left mounted before deleting the tree.
    grep -o " $ROOTFS[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT

start=$SECONDS
log "debootstrap $SUITE (minbase + $PACKAGES) into $ROOTFS"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >&2

# Trim: package caches, apt lists, docs, man pages, locales other than C; logs.
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
       "$ROOTFS"/var/log/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/usr/share/lintian "$ROOTFS"/usr/share/linda
find "$ROOTFS"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
find "$ROOTFS"/usr/lib/python3* -depth -name __pycache__ -type d -exec rm -rf {} +
# Keep future package installs in derived images from bringing the docs back.
cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/01-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
# /etc/apt/sources.list stays as debootstrap wrote it: the mirror this build used.
: > "$ROOTFS/etc/hostname"
: > "$ROOTFS/etc/resolv.conf"
rm -f "$ROOTFS/etc/machine-id" && : > "$ROOTFS/etc/machine-id"

tar --numeric-owner --xattrs -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase $SUITE + $PACKAGES" \
    - "$TAG" >&2
log "built $TAG in $((SECONDS - start))s ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$TAG"
