"""Find a run's processes from the outside, by the marker the executor puts in their environment.

Inside the sandbox a run has its own PID namespace, so the pids it writes down are not the host's;
the marker (``AUTOSCI_RUN_ID=<experiment id>@...``) finds its processes either way.
"""

from __future__ import annotations

import os
import time

from autosci_graph.tools.env import RUN_MARKER


def marked(experiment_id: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries the marker of ``experiment_id``."""
    needle = f"{RUN_MARKER}={experiment_id}@".encode()
    return [pid for pid, (_, environ) in _live().items() if any(v.startswith(needle) for v in environ)]


def wait_gone(experiment_id: str, timeout: float = 5.0) -> list[int]:
    """Wait until no process of ``experiment_id`` is alive; return those still alive then."""
    deadline = time.time() + timeout
    while (left := marked(experiment_id)) and time.time() < deadline:
        time.sleep(0.05)
    return left


def _live() -> dict[int, tuple[int, list[bytes]]]:
    """Every live (non-zombie) process: its process group and environment. A zombie is dead; a
    container's init may be slow to reap the ones a killed sandbox leaves."""
    found: dict[int, tuple[int, list[bytes]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            if fields[0] in (b"Z", b"X"):
                continue
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                found[int(entry.name)] = (int(fields[2]), fh.read().split(b"\0"))
        except (OSError, ValueError):
            continue
    return found


def lab_processes(run_id: str) -> dict[int, int]:
    """Live processes of a lab run's experiments (their ids start with the run id), with their
    process group."""
    needle = f"{RUN_MARKER}={run_id}-".encode()
    return {pid: pgid for pid, (pgid, environ) in _live().items() if any(v.startswith(needle) for v in environ)}


def live_groups(pgids: set[int]) -> set[int]:
    """Those of ``pgids`` that still have a live member."""
    return {pgid for pgid, _ in _live().values()} & pgids
