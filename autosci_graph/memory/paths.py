"""Where the memory and its embedding model live on disk."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$AUTOSCI_CACHE_DIR``, else ``~/.cache/autosci_graph`` (the same root the task data uses)."""
    return Path(os.environ.get("AUTOSCI_CACHE_DIR") or Path.home() / ".cache" / "autosci_graph")


def default_memory_dir() -> Path:
    """The persistent store shared by every run on this machine: ``$AUTOSCI_MEMORY_DIR``, else
    ``<cache root>/memory``. Records carry their task, so runs of one task share its dead ends."""
    override = os.environ.get("AUTOSCI_MEMORY_DIR")
    return Path(override) if override else cache_root() / "memory"
