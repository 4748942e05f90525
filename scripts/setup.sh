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
# Experiments run in a bubblewrap sandbox (see README, "Containment"): install it when we may.
if ! command -v bwrap >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null; } \
            || echo "setup: could not install bubblewrap; install it (sudo apt-get install bubblewrap) or run with --sandbox none" >&2
    else
        echo "setup: bubblewrap is missing; install it (sudo apt-get install bubblewrap) or run with --sandbox none" >&2
    fi
fi
# The PostgreSQL checkpoint tests start Debian's PostgreSQL on loopback: install it when we may.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null; } \
            || echo "setup: could not install postgresql; the PostgreSQL checkpoint tests will fail until it is installed" >&2
    else
        echo "setup: PostgreSQL is missing; install it (sudo apt-get install postgresql) for the checkpoint tests" >&2
    fi
fi
# The real_model tests (README, "Run with a local model") need llama.cpp's llama-server and a small
# instruct model. Both are prepared once into ~/.cache/autosci_graph (the build takes about 7.5
# minutes on 2 cores; later runs reuse it): the compilers come from Debian when we may install them.
if ! { command -v cmake && command -v ninja && command -v c++; } >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends cmake ninja-build build-essential >/dev/null; } \
            || echo "setup: could not install cmake, ninja-build and build-essential; the real_model tests will fail until they are installed" >&2
    fi
fi
.venv/bin/python -m tests.support.local_model >/dev/null \
    || echo "setup: llama-server or its test model could not be prepared (see above); the real_model tests will fail" >&2
