#!/usr/bin/env bash
# Make a local Docker engine usable, idempotently:
#   - installs Debian's docker.io (dockerd, containerd, runc) and debootstrap when missing;
#   - starts dockerd in the background when it is not answering (log: $DOCKERD_LOG);
#   - waits until `docker info` works.
# Needs root. Nothing is pulled from any image registry: the images are built from a local
# debootstrap base (images/base/build-base.sh).
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WAIT_S=${DOCKER_UP_WAIT_S:-90}

log() { echo "docker-up: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# docker.io brings its own client; a pre-installed one elsewhere on PATH is fine too.
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # --no-install-recommends: no need for the recommended extras (git, xz, apparmor, ...).
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
    log "dockerd already running"
    exit 0
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    $SUDO mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid + nohup: dockerd outlives this script and the shell that ran it.
    $SUDO setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
fi

deadline=$((SECONDS + WAIT_S))
until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
        log "dockerd did not answer within ${WAIT_S}s; last lines of $DOCKERD_LOG:"
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        exit 1
    fi
    sleep 1
done
log "ready: $(docker info --format 'server {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}')"
