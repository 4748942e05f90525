"""File hashing shared by the data provenance, the final-evaluation checks and the model checks."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

_BLOCK = 1 << 20


def update_from_file(digest: Any, path: Path) -> None:
    """Feed a file's bytes to ``digest`` in blocks (files may be large)."""
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    update_from_file(digest, path)
    return digest.hexdigest()
