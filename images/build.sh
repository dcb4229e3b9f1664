#!/usr/bin/env bash
# Build the container images: images/build.sh [operator|pipeline|all]   (default: all)
#
#   vitpipeline/operator:<version>   kopf operator; core + `operator` extra, no torch
#   vitpipeline/pipeline:<version>   Ray head / worker / job submitter; `pipeline` extra
#
# <version> is the project version in pyproject.toml. Each build context is a small directory
# (not the repository): the requirements exported from uv.lock with hashes, the project wheel
# (uv build --wheel) and the CA bundle pip needs to reach the package index.
# BASE_IMAGE defaults to the offline debootstrap base (images/base/build-base.sh, cached);
# set BASE_IMAGE to build FROM something else (e.g. the Dockerfiles' digest-pinned default).
# Prints, per image: tag, size and build time. Needs a Docker engine (images/docker-up.sh).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
UV=${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")}
CA_BUNDLE=${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
WORK=${VITP_IMAGES_WORKDIR:-/var/tmp/vitpipeline-images}

log() { echo "build: $*" >&2; }

what=${1:-all}
case "$what" in
    operator | pipeline) targets=("$what") ;;
    all) targets=(operator pipeline) ;;
    *) echo "usage: $0 [operator|pipeline|all]" >&2; exit 2 ;;
esac

docker info >/dev/null 2>&1 || "$HERE/docker-up.sh"

version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$ROOT/pyproject.toml")
base=${BASE_IMAGE:-$("$HERE/base/build-base.sh")}
log "version $version, base $base"

# The wheel serves both images. Hatchling builds are reproducible (fixed timestamps), so an
# unchanged tree gives a byte-identical wheel and Docker's layer cache holds.
mkdir -p "$WORK"
wheels=$(mktemp -d "$WORK/wheel.XXXXXX")
trap 'rm -rf "$wheels"' EXIT
(cd "$ROOT" && "$UV" build --quiet --wheel --out-dir "$wheels" >&2)

for target in "${targets[@]}"; do
    ctx="$WORK/context-$target"
    rm -rf "$ctx" && mkdir -p "$ctx"
    (cd "$ROOT" && "$UV" export --quiet --frozen --no-dev --extra "$target" --no-emit-project \
        --format requirements-txt --output-file "$ctx/requirements.txt" >/dev/null)
    cp "$wheels"/vitpipeline-*.whl "$ctx/"
    if [ -r "$CA_BUNDLE" ]; then cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"; else : > "$ctx/ca-certificates.crt"; fi
    cp "$HERE/$target/Dockerfile" "$ctx/Dockerfile"

    tag="vitpipeline/$target:$version"
    log "building $tag (log: $WORK/build-$target.log)"
    start=$(date +%s.%N)
    if ! docker build --build-arg BASE_IMAGE="$base" --label "io.vitpipeline.image=$target" \
            --tag "$tag" "$ctx" > "$WORK/build-$target.log" 2>&1; then
        tail -n 40 "$WORK/build-$target.log" >&2
        log "FAILED: $tag"
        exit 1
    fi
    secs=$(echo "$start $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}')
    size=$(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1 / 1e6}')
    echo "$tag  size $size  built in ${secs}s"
done
# Earlier builds of these tags, now untagged, only take disk.
docker image prune --force --filter label=io.vitpipeline.image >/dev/null
