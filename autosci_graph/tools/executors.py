"""Pick an executor by name: ``local`` (processes on this machine) or ``ray`` (a Ray cluster).

The CLI, the runner and the LangGraph server all build the lab's executor here, so one setting
(``--executor ray``, ``{"executor": "ray"}``) means the same everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from autosci_graph.errors import SettingsError
from autosci_graph.task import ResearchTask
from autosci_graph.tools.base import Executor
from autosci_graph.tools.sandbox import SandboxMode

ExecutorKind = Literal["local", "ray"]
EXECUTOR_KINDS: tuple[ExecutorKind, ...] = ("local", "ray")


def check_kind(kind: str) -> ExecutorKind:
    """``kind`` if it names an executor, else a :class:`SettingsError` listing them."""
    if kind not in EXECUTOR_KINDS:
        raise SettingsError(f"executor {kind!r}: expected one of {', '.join(EXECUTOR_KINDS)}")
    return kind  # type: ignore[return-value]


def ray_address(given: str | None = None) -> str | None:
    """The Ray cluster to use: ``given`` (``--ray-address``), else ``RAY_ADDRESS``, else None (Ray's default)."""
    return given or os.environ.get("RAY_ADDRESS") or None


def make_executor(
    kind: str,
    task: ResearchTask,
    work_dir: str | os.PathLike[str],
    *,
    slots: int | None = None,
    sandbox: SandboxMode = "auto",
    address: str | None = None,
    cpus_per_slot: int = 1,
) -> Executor:
    """The executor ``kind`` for ``task`` writing under ``work_dir``.

    ``cpus_per_slot`` is what a CPU experiment gets: its thread count locally, its ``num_cpus`` on Ray.

    Example::

        executor = make_executor("ray", task, "runs/demo", address="10.0.0.1:6379")
    """
    if check_kind(kind) == "ray":
        from autosci_graph.tools.ray import RayExecutor

        return RayExecutor(task, Path(work_dir), address=ray_address(address), slots=slots, sandbox=sandbox,
                           cpus_per_slot=cpus_per_slot)
    from autosci_graph.tools.local import LocalExecutor

    return LocalExecutor(task, Path(work_dir), slots=slots, sandbox=sandbox, threads_per_slot=cpus_per_slot)


__all__ = ["EXECUTOR_KINDS", "ExecutorKind", "check_kind", "make_executor", "ray_address"]
