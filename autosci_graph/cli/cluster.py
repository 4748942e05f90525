"""``autosci run``'s flags for running beyond one machine: executor, checkpoints, memory server.

* ``--executor ray`` with ``--ray-address`` (default ``RAY_ADDRESS``): experiments as Ray tasks;
* ``--checkpoint postgresql://...``: checkpoints in PostgreSQL; ``--resume postgresql://...``
  rebuilds the run from the database alone (``--run-id`` picks one of several runs, ``--run-dir``
  says where its new run directory goes, a task folder argument says where the task lives here);
* ``--memory-host/--memory-port``: the memory on a ``chroma run`` server shared by several labs.

Everything is checked before a run directory is written: an unreachable database, memory server or
Ray cluster is one line naming the fix, and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from autosci_graph.errors import SettingsError
from autosci_graph.postgres_checkpoints import is_postgres_url


__all__ = ["add_cluster_flags", "apply_resume_flags", "is_postgres_url", "record", "resume_from_url", "spec_fields"]


def add_cluster_flags(p: argparse.ArgumentParser) -> None:
    """The flags of this module, on the ``run`` parser."""
    p.add_argument("--executor", choices=("local", "ray"), default=None,
                   help="where experiments run: local processes (default) or Ray tasks on a cluster")
    p.add_argument("--ray-address", metavar="HOST:PORT", help="the Ray cluster for --executor ray (default: $RAY_ADDRESS)")
    p.add_argument("--cpus-per-slot", type=int, default=1, metavar="K",
                   help="CPUs one CPU experiment gets: its threads, and on Ray the num_cpus its task asks for (default 1)")
    p.add_argument("--checkpoint", metavar="URL",
                   help="keep checkpoints in PostgreSQL (postgresql://USER@HOST:PORT/DB; password in PGPASSWORD or "
                        "~/.pgpass) instead of the run directory's SQLite file; --resume URL resumes from it anywhere")
    p.add_argument("--run-id", help="with --resume postgresql://...: which run of the database to resume")
    p.add_argument("--memory-host", help="a Chroma server (`chroma run`) for the memory, shared by several labs")
    p.add_argument("--memory-port", type=int, help="port of the --memory-host server (default 8000)")


def spec_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The RunSpec fields these flags set for a new run, checked (nothing written yet)."""
    executor = args.executor or "local"
    if args.ray_address and executor != "ray":
        raise SettingsError("--ray-address needs --executor ray")
    if args.memory_port is not None and not args.memory_host:
        raise SettingsError("--memory-port needs --memory-host (the Chroma server's address)")
    if args.memory_host and args.memory_path:
        raise SettingsError("give the memory either --memory-path (a local folder) or --memory-host (a Chroma server), not both")
    if args.cpus_per_slot < 1:
        raise SettingsError(f"--cpus-per-slot must be at least 1, got {args.cpus_per_slot}")
    if args.run_id:
        raise SettingsError("--run-id picks a run to resume: use it with --resume postgresql://...")
    if args.checkpoint:
        from autosci_graph.postgres_checkpoints import check_reachable

        check_reachable(args.checkpoint)
    if args.memory_host and not args.no_memory:
        check_memory_server(args.memory_host, args.memory_port)
    if executor == "ray":
        from autosci_graph.tools.executors import ray_address
        from autosci_graph.tools.ray import connect

        connect(ray_address(args.ray_address))
    return {"executor": executor, "ray_address": args.ray_address, "cpus_per_slot": args.cpus_per_slot, "checkpoint": args.checkpoint,
            "memory_host": args.memory_host, "memory_port": args.memory_port}


def check_memory_server(host: str, port: int | None) -> None:
    """Raise the memory's own one-line error when no Chroma server answers at ``host:port``."""
    from autosci_graph.memory.chroma import ChromaMemory

    ChromaMemory(host=host, port=port).close()


def record(spec: Any) -> None:
    """Keep a new run's spec in its PostgreSQL database (if it has one), for ``--resume URL``."""
    if spec.checkpoint:
        from autosci_graph.postgres_checkpoints import save_spec

        save_spec(spec.checkpoint, spec.run_id, Path(spec.task_dir).name, dataclasses.asdict(spec))


def apply_resume_flags(args: argparse.Namespace, spec: Any) -> None:
    """What a resumed run may change: where its cluster is (machines move), and its executor."""
    if args.executor:
        spec.executor = args.executor
    if args.ray_address:
        spec.ray_address = args.ray_address
    if args.memory_host:
        spec.memory_host, spec.memory_port = args.memory_host, args.memory_port
        spec.memory_path = None


def resume_from_url(args: argparse.Namespace) -> tuple[Path, Any]:
    """The run directory and spec of ``--resume postgresql://...``, rebuilt from the database.

    The new run directory (``--run-dir``, default ``runs/TASK-RUN_ID``) gets a ``run.json`` that
    points at the same database; experiments in flight when the lab stopped run again there.
    """
    from autosci_graph.postgres_checkpoints import load_spec
    from autosci_graph.runner import RunSpec

    url = args.resume
    raw = load_spec(url, args.run_id)
    try:
        spec = RunSpec(**raw)
    except TypeError as exc:
        raise SettingsError(f"the run kept in {url} was written by another autosci_graph version ({exc})") from None
    spec.checkpoint = url
    if args.task_dir:  # the task folder lives somewhere else on this machine
        spec.task_dir = str(Path(args.task_dir).expanduser().resolve())
    if not (Path(spec.task_dir) / "task.toml").is_file():
        raise SettingsError(f"the run's task folder {spec.task_dir} is not on this machine; give its copy here: "
                            f"autosci run TASK_DIR --resume {url}")
    task_name = spec.task().name
    run_dir = Path(args.run_dir or Path("runs") / f"{task_name}-{spec.run_id}").expanduser().resolve()
    existing = run_dir / "run.json"
    if existing.exists() and RunSpec.load(run_dir).run_id != spec.run_id:
        raise SettingsError(f"{run_dir} holds another run; pick another --run-dir")
    apply_resume_flags(args, spec)
    spec.save(run_dir)
    return run_dir, spec
