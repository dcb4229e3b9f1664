#!/usr/bin/env bash
# Build the in-cluster S3-protocol server image (moto) for the kind end-to-end test, from the
# `s3server` extra pinned in uv.lock, on the offline base (images/base/build-base.sh).
# The tag carries a hash of the pins and this recipe, so it is rebuilt only when they change.
# Prints the tag on stdout.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
UV=${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")}
CA_BUNDLE=${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

base=$("$ROOT/images/base/build-base.sh")
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
(cd "$ROOT" && "$UV" export --quiet --frozen --no-dev --extra s3server --no-emit-project \
    --format requirements-txt --output-file "$ctx/requirements.txt" >/dev/null)
if [ -r "$CA_BUNDLE" ]; then cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"; else : > "$ctx/ca-certificates.crt"; fi
cp "$HERE/Dockerfile" "$ctx/"
# Comment lines name the temporary output file: leave them out of the hash.
hash=$(cat <(grep -v "^#" "$ctx/requirements.txt") "$HERE/Dockerfile" <(echo "$base") | sha256sum | cut -c1-12)
tag="vitpipeline/s3server:$hash"
if ! docker image inspect "$tag" >/dev/null 2>&1; then
    echo "s3server: building $tag" >&2
    docker build --quiet --build-arg BASE_IMAGE="$base" --tag "$tag" "$ctx" >&2
fi
echo "$tag"
