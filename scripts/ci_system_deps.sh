#!/usr/bin/env bash
# System packages the test suite needs beyond the virtual environment. Idempotent; needs root (or sudo).
#   chromium: the headless browser that tests/integration/test_report_html.py opens report.html in.
#   bubblewrap: the sandbox every experiment runs in (tests/integration/test_sandbox.py).
#   cmake, ninja-build, build-essential: build llama-server for the real_model tests (scripts/build_llama_server.sh).
#   postgresql: the server the PostgreSQL checkpoint tests start on loopback (tests/integration/test_cluster_services.py).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v bwrap >/dev/null || missing+=(bubblewrap)
{ command -v cmake && command -v ninja && command -v c++; } >/dev/null || missing+=(cmake ninja-build build-essential)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then  # one index update for all of them
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
/usr/bin/chromium --version
bwrap --version
ls /usr/lib/postgresql/*/bin/initdb
