#!/usr/bin/env bash
# Set up a virtual environment in .venv with everything autosci_graph needs. Idempotent.
# torch==2.13.0 goes in first: an unpinned torch (or a package that pulls one in) would fetch a
# multi-GB CUDA build; with 2.13.0 present, the project's `torch>=2.4` installs nothing more.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# [dev] includes [cluster]: Ray, langgraph-checkpoint-postgres and psycopg (README, "On a cluster").
.venv/bin/python -m pip install --quiet -e ".[dev]"
# System packages, from Debian when we may (root, or sudo without a password); otherwise a line
# saying what to install and what fails without it.
apt_install() {  # apt_install WHAT_FAILS_WITHOUT PACKAGE...
    local why="$1"; shift
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if command -v apt-get >/dev/null && { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }; then
        { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } \
            || echo "setup: could not install $*; $why" >&2
    else
        echo "setup: $* missing (sudo apt-get install $*); $why" >&2
    fi
}
# Experiments run in a bubblewrap sandbox (see README, "Containment").
command -v bwrap >/dev/null || apt_install "install it or run with --sandbox none" bubblewrap
# The PostgreSQL checkpoint tests start Debian's PostgreSQL on loopback.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install "the PostgreSQL checkpoint tests will fail until it is installed" postgresql
# The real_model tests (README, "Run with a local model") need llama.cpp's llama-server and a small
# instruct model. Both are prepared once into ~/.cache/autosci_graph (the build takes about 7.5
# minutes on 2 cores; later runs reuse it): the compilers come from Debian when we may install them.
{ command -v cmake && command -v ninja && command -v c++; } >/dev/null \
    || apt_install "the real_model tests will fail until they are installed" cmake ninja-build build-essential
.venv/bin/python -m tests.support.local_model >/dev/null \
    || echo "setup: llama-server or its test model could not be prepared (see above); the real_model tests will fail" >&2
