"""Device slots: where an experiment may run, one experiment per slot at a time.

A slot is one GPU (handed to the run through ``CUDA_VISIBLE_DEVICES``) or, on a machine without
GPUs, a share of the CPU cores (handed over through ``OMP_NUM_THREADS`` and friends). GPUs are
found with ``nvidia-smi -L``, restricted by the caller's ``CUDA_VISIBLE_DEVICES``; torch is never
imported here, so detection is cheap and safe in a process that must not touch CUDA.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

from autosci_graph.errors import SettingsError

log = logging.getLogger(__name__)

DeviceKind = Literal["auto", "cpu", "cuda"]
_GPU_LINE = re.compile(r"^GPU\s+(\d+):\s*(.*?)\s*(?:\(UUID:\s*([^)]+)\))?\s*$")


@dataclass(frozen=True)
class Gpu:
    """One visible GPU: the index to put in ``CUDA_VISIBLE_DEVICES`` and its name."""

    index: str
    name: str


@dataclass(frozen=True)
class Slot:
    """A place to run one experiment: a GPU, or ``threads`` CPU threads."""

    index: int
    threads: int
    gpu: Gpu | None = None

    @property
    def label(self) -> str:
        """Stable name used in provenance, e.g. ``cuda:0 (NVIDIA H100)`` or ``cpu:1``."""
        if self.gpu is not None:
            return f"cuda:{self.gpu.index} ({self.gpu.name})"
        return f"cpu:{self.index}"


def detect_gpus() -> list[Gpu]:
    """The GPUs this process may use, as ``nvidia-smi -L`` lists them.

    ``CUDA_VISIBLE_DEVICES`` restricts (and orders) the list as CUDA itself would: an empty value
    means no GPU; indices or ``GPU-...`` UUIDs select GPUs.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "NoDevFiles"):
        return []
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("nvidia-smi -L failed (%s); assuming no GPU", exc)
        return []
    if out.returncode != 0:
        log.info("nvidia-smi -L exited %s; assuming no GPU", out.returncode)
        return []
    gpus: list[tuple[str, str, str]] = []
    for line in out.stdout.splitlines():
        m = _GPU_LINE.match(line.strip())
        if m:
            gpus.append((m.group(1), m.group(2), (m.group(3) or "").strip()))
    if visible is None:
        return [Gpu(index=i, name=n) for i, n, _ in gpus]
    chosen: list[Gpu] = []
    for item in (v.strip() for v in visible.split(",")):
        for i, n, uuid in gpus:
            if item == i or (item and uuid.startswith(item)):
                # Keep the caller's spelling: it is what CUDA_VISIBLE_DEVICES must say to the child.
                chosen.append(Gpu(index=item, name=n))
                break
    return chosen


def plan_slots(slots: int | None = None, threads_per_slot: int = 1, device: DeviceKind = "auto") -> list[Slot]:
    """Decide the slots of an executor.

    With GPUs (``device`` ``auto`` or ``cuda``): one slot per GPU, at most ``slots`` of them.
    Otherwise CPU slots: ``slots`` of them (default: as many as the cores allow at
    ``threads_per_slot`` threads each).
    """
    if threads_per_slot < 1:
        raise SettingsError(f"threads_per_slot must be at least 1, got {threads_per_slot}")
    if slots is not None and slots < 1:
        raise SettingsError(f"slots must be at least 1, got {slots}")
    gpus = detect_gpus() if device in ("auto", "cuda") else []
    if device == "cuda" and not gpus:
        raise SettingsError("device='cuda' but no GPU is visible (nvidia-smi -L lists none); use device='cpu'")
    if gpus:
        chosen = gpus[: slots or len(gpus)]
        return [Slot(index=i, threads=threads_per_slot, gpu=g) for i, g in enumerate(chosen)]
    n = slots or max(1, (os.cpu_count() or 1) // threads_per_slot)
    return [Slot(index=i, threads=threads_per_slot) for i in range(n)]
