"""What a run needs to be reproduced: the software environment and the exact data.

Nothing here imports torch (or CUDA): versions are read from package metadata, the GPU from
``nvidia-smi``. Fingerprints are computed once per process; data hashes once per prepared data
folder (stored in its preparation marker, see :mod:`autosci_graph.tools.prepare`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import platform
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from autosci_graph._hashing import update_from_file
from autosci_graph.tools.slots import Slot

log = logging.getLogger(__name__)

#: Files inside a data folder that describe it rather than belong to it.
BOOKKEEPING_FILES = frozenset({".autosci_prepared.json", ".autosci_prepare.lock", ".autosci_prepare.log"})
_PACKAGES = ("torch", "numpy", "autosci_graph")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@functools.lru_cache(maxsize=1)
def _cuda_info() -> dict[str, str]:
    """Driver version and CUDA version as nvidia-smi reports them (empty without a GPU)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    try:
        out = subprocess.run([smi], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    info: dict[str, str] = {}
    for token in ("Driver Version:", "CUDA Version:"):
        if token in out.stdout:
            value = out.stdout.split(token, 1)[1].split()[0]
            info["cuda_driver" if token.startswith("Driver") else "cuda"] = value
    return info


@functools.lru_cache(maxsize=1)
def _base_fingerprint() -> tuple[tuple[str, str], ...]:
    fp = {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    for package in _PACKAGES:
        fp[package] = _version(package)
    fp.update(_cuda_info())
    return tuple(fp.items())


def env_fingerprint(slot: Slot) -> dict[str, str]:
    """Python, torch, CUDA and platform versions, plus the device the slot gives the run."""
    fp = dict(_base_fingerprint())
    if slot.gpu is not None:
        fp["device"] = f"cuda:{slot.gpu.index}"
        fp["gpu"] = slot.gpu.name
    else:
        fp["device"] = "cpu"
        fp["cpu_threads"] = str(slot.threads)
    return fp


def hash_folder(folder: Path) -> str:
    """SHA-256 over the relative paths and contents of every file in ``folder``, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in BOOKKEEPING_FILES):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        update_from_file(digest, path)
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


_hash_lock = threading.Lock()
_hash_cache: dict[tuple[str, float], str] = {}


def data_hash(data_dir: Path) -> str | None:
    """The hash of a prepared data folder, or None when the folder does not exist.

    Taken from the preparation marker when there is one (computed there once, right after
    preparing); otherwise computed and cached for as long as the folder's mtime stays the same.
    """
    if not data_dir.is_dir():
        return None
    marker = data_dir / ".autosci_prepared.json"
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8")).get("data_hash")
        if isinstance(recorded, str):
            return recorded
    except (OSError, ValueError):
        pass
    key = (str(data_dir.resolve()), data_dir.stat().st_mtime)
    with _hash_lock:
        if key not in _hash_cache:
            _hash_cache[key] = hash_folder(data_dir)
        return _hash_cache[key]
