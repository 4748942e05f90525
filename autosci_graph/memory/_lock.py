"""One writing process per local memory folder.

Chroma keeps a folder's vector index in the memory of the process that opened it. Two processes
writing one folder at once each flush their own view of the index: measured here, two runs adding
1,500 records each left 150 records that search could no longer reach, and a process that opened an
empty folder failed with "Nothing found on disk" once another had written. So a writer takes an
exclusive advisory lock on the folder and a second writer gets a clear error instead. Readers (the
CLI) take no lock: a new process loads the index as it is on disk.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from autosci_graph.memory.errors import MemoryBusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the documented risk remains
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "autosci-writer.lock"
# Locks are per process: several memories on one folder inside one process share Chroma's single
# in-process system (consistent with each other), so they share one lock too, counted.
_held: dict[str, tuple[int, int]] = {}
_guard = threading.Lock()


def acquire(folder: Path) -> None:
    """Take (or share, within this process) the writer lock of ``folder``; raise if another holds it."""
    if fcntl is None:
        return
    key = str(folder.resolve())
    with _guard:
        if key in _held:
            fd, users = _held[key]
            _held[key] = (fd, users + 1)
            return
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise MemoryBusyError(
                f"memory folder {folder} is being written by another process (pid {holder}); one folder takes one "
                f"writing process at a time. For concurrent runs start a Chroma server (`chroma run --path {folder} "
                "--port 8000`) and give the memory host/port, or give this run its own folder (AUTOSCI_MEMORY_DIR)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = (fd, 1)


def release(folder: Path) -> None:
    """Give back one use of the lock; the last one in this process unlocks the folder."""
    if fcntl is None:
        return
    key = str(folder.resolve())
    with _guard:
        if key not in _held:
            return
        fd, users = _held[key]
        if users > 1:
            _held[key] = (fd, users - 1)
            return
        del _held[key]
        os.close(fd)  # closing the descriptor drops the flock
