#!/usr/bin/env bash
# Time one phase of `make test` and append it to the phase log that pytest prints at the end
# (tests/support/phases.py):
#   tests/support/phase.sh --reset            # a new `make test`: empty the log, note the start
#   tests/support/phase.sh NAME CMD [ARGS...]  # run CMD; log "NAME<TAB>seconds<TAB>exit status"
# The log is $VITP_PHASES (default .cache/test-phases.tsv at the repository root).
set -uo pipefail
LOG=${VITP_PHASES:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/test-phases.tsv}
mkdir -p "$(dirname "$LOG")"
now() { date +%s.%N; }
if [ "${1:-}" = "--reset" ]; then
    printf 'start\t%s\t0\n' "$(now)" > "$LOG"
    exit 0
fi
name=$1; shift
start=$(now)
"$@"
rc=$?
awk -v n="$name" -v a="$start" -v b="$(now)" -v rc="$rc" 'BEGIN { printf "%s\t%.1f\t%d\n", n, b - a, rc }' >> "$LOG"
exit "$rc"
