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
.venv/bin/python -m pip install --quiet -e ".[dev]"
