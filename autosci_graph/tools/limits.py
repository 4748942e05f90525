"""Resource caps of one run: memory per process and processes (threads included) per run.

Memory is capped with ``RLIMIT_DATA`` (the heap and private writable mappings of each process),
set in the child before it executes the command, so an allocation past the cap fails inside the
run (Python raises ``MemoryError``, classified ``oom``) instead of waking the kernel's OOM killer
on the whole machine. ``RLIMIT_DATA`` rather than ``RLIMIT_AS``: CUDA reserves terabytes of
address space it never touches, which an address-space cap would refuse.

The process cap uses a ``pids`` cgroup of its own per run where this process may create one
(cgroup v1 ``/sys/fs/cgroup/pids``, or a delegated v2 hierarchy): exact, per run. Elsewhere it
falls back to ``RLIMIT_NPROC``, which counts every task of the user, so the limit is set to the
user's current count plus the cap; the kernel does not apply it to root, hence the cgroup first.
Past the cap ``fork`` fails (``BlockingIOError`` in Python) and the run ends as a ``crash``.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autosci_graph.task import Limits

log = logging.getLogger(__name__)

_CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


def physical_memory_bytes() -> int:
    """Installed RAM (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


@dataclass(frozen=True)
class ResourceLimits:
    """Caps applied to one run (``None``: no cap)."""

    memory_bytes: int | None = None
    processes: int | None = None

    def as_dict(self) -> dict[str, int]:
        """What provenance records, e.g. ``{"memory_mb": 4096, "processes": 512}``."""
        out = {}
        if self.memory_bytes:
            out["memory_mb"] = self.memory_bytes // (1 << 20)
        if self.processes:
            out["processes"] = self.processes
        return out


def limits_for(limits: "Limits") -> ResourceLimits:
    """The caps a task's ``[limits]`` asks for (``memory_mb = 0``: 90% of the RAM)."""
    memory = limits.memory_mb * (1 << 20) if limits.memory_mb else int(0.9 * physical_memory_bytes()) or None
    return ResourceLimits(memory_bytes=memory, processes=limits.processes or None)


def _user_tasks(uid: int) -> int:
    """How many tasks (threads) the user runs now, as ``RLIMIT_NPROC`` counts them."""
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(entry.path).st_uid == uid:
                    n += len(os.listdir(f"{entry.path}/task"))
            except OSError:
                continue
    return n


@functools.lru_cache(maxsize=1)
def _pids_parent() -> Path | None:
    """A cgroup folder with the ``pids`` controller under which this process may make groups."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for root in _CGROUP_ROOTS:
        for line in lines:
            _, controllers, path = line.split(":", 2)
            v1 = root.name == "pids" and "pids" in controllers.split(",")
            if not (v1 or (root.name == "cgroup" and controllers == "")):
                continue
            parent = root / path.lstrip("/")
            probe = parent / f"autosci-probe-{uuid.uuid4().hex[:8]}"
            try:
                probe.mkdir()
            except OSError:
                continue
            try:
                if (probe / "pids.max").exists():
                    return parent
            finally:
                probe.rmdir()
    return None


def _remove_stale_groups(parent: Path, min_age_s: float = 60.0) -> None:
    """Remove the empty cgroups of runs whose lab was killed before it could (``rmdir`` refuses a
    group with processes in it; a young one may be a run about to join it, so it is left)."""
    now = time.time()
    for group in parent.glob("autosci-*"):
        try:
            if now - group.stat().st_mtime > min_age_s:
                group.rmdir()
        except OSError:
            continue


def process_cap_enforced() -> bool:
    """Whether a process cap holds here: a pids cgroup, or ``RLIMIT_NPROC`` for a non-root user."""
    return _pids_parent() is not None or os.getuid() != 0


@functools.lru_cache(maxsize=1)
def _warn_uncapped(processes: int) -> None:
    """Said once per process, not once per run."""
    log.warning("running as root without a writable pids cgroup: the process cap of %d is not enforced", processes)


class RunLimits:
    """The caps of one run while it runs: ``preexec`` in the child, ``close`` when it is over."""

    def __init__(self, limits: ResourceLimits, run_id: str) -> None:
        self.limits = limits
        self._cgroup: Path | None = None
        self._nproc: int | None = None
        if limits.processes:
            parent = _pids_parent()
            if parent is not None:
                _remove_stale_groups(parent)
                group = parent / f"autosci-{run_id.replace('@', '-').replace('/', '-')}"
                try:
                    group.mkdir(exist_ok=True)
                    (group / "pids.max").write_text(str(limits.processes))
                    self._cgroup = group
                except OSError as exc:
                    log.info("no pids cgroup for run %s (%s); using RLIMIT_NPROC", run_id, exc)
            if self._cgroup is None and os.getuid() == 0:
                _warn_uncapped(limits.processes)  # root ignores RLIMIT_NPROC: no need to count its tasks
            elif self._cgroup is None:
                self._nproc = _user_tasks(os.getuid()) + limits.processes

    def preexec(self) -> Callable[[], None]:
        """The function the child runs before ``exec``: join the cgroup, set the rlimits.

        It only makes system calls (no locks, no imports), as code between fork and exec must.
        """
        memory, nproc, procs = self.limits.memory_bytes, self._nproc, self._cgroup / "cgroup.procs" if self._cgroup else None

        def apply() -> None:
            if procs is not None:
                fd = os.open(procs, os.O_WRONLY)
                try:
                    os.write(fd, str(os.getpid()).encode())
                finally:
                    os.close(fd)
            if memory:
                resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
            if nproc:
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashing run leaves no core dump

        return apply

    def close(self) -> None:
        """Remove the run's cgroup (every process of the run is gone by now)."""
        if self._cgroup is not None:
            try:
                self._cgroup.rmdir()
            except OSError as exc:
                log.warning("could not remove cgroup %s: %s", self._cgroup, exc)
            self._cgroup = None


__all__ = ["ResourceLimits", "RunLimits", "limits_for", "physical_memory_bytes", "process_cap_enforced"]
