#!/usr/bin/env bash
# Debian's Chromium for the browser test of report.html (tests/support/browser.py), installed
# once; nothing to do when it is already there.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && { echo "chromium: $(chromium --version 2>/dev/null)"; exit 0; }
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "chromium: $(chromium --version 2>/dev/null)"
