#!/usr/bin/env bash
# System packages the test suite needs beyond the virtual environment. Idempotent; needs root (or sudo).
#   chromium: the headless browser that tests/integration/test_report_html.py opens report.html in.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
if [ ! -x /usr/bin/chromium ]; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
fi
/usr/bin/chromium --version
