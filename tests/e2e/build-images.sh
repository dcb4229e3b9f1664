#!/usr/bin/env bash
# Every image the kind suite runs, built ahead of it: `make test` starts this beside the Go
# builds of the testbed and the kind node image (CPU-bound, while these mostly download and
# unpack), so the e2e set-up finds each image already tagged (deploy.build_images).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
"$ROOT/images/docker-up.sh"
"$ROOT/images/build.sh" all
"$HERE/kuberay/build.sh" >/dev/null
"$HERE/s3server/build.sh" >/dev/null
