"""The node side of the Ray executor: what one Ray task does on the machine that runs it.

Nothing here assumes a filesystem shared with the lab. The task folder arrives as bytes (a gzipped
tar the driver put in Ray's object store once), unpacked once per node into a cache keyed by its
hash; each attempt copies it into its own scratch folder, applies the change there, prepares the
task's data on this node (cached, as on any machine) and runs the command through the same
:func:`~autosci_graph.tools.attempt.run_attempt` as a local run: sandbox, caps, time budget by
process group (TERM, then KILL), metrics. The log and the result go back as the task's return value
and the scratch folder is removed.

Only the task, the change and a few settings are shipped: the run's environment is built here from
this node's own environment through the same allow-list as a local run, so the lab's secrets never
travel and the node's stay out of the run.

Orphans: a Ray worker can die without running any cleanup (``ray.cancel(force=True)``, its driver
SIGKILLed, the raylet gone). The run's main process gets ``PR_SET_PDEATHSIG``; helpers that left
its process group carry ``AUTOSCI_RAY_OWNER=<worker pid>:<start ticks>`` and every later task on
the node kills those whose owner is gone.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
import shutil
import signal
import socket
import tarfile
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autosci_graph.state import RunRequest
from autosci_graph.task import ResearchTask
from autosci_graph.tools.attempt import Attempt, run_attempt
from autosci_graph.tools.env import RUN_MARKER
from autosci_graph.tools.limits import limits_for
from autosci_graph.tools.prepare import ensure_prepared
from autosci_graph.tools.process import ManagedProcess, is_running, start_ticks
from autosci_graph.tools.sandbox import Sandbox, SandboxMode, make_sandbox
from autosci_graph.tools.slots import Gpu, Slot, detect_gpus

log = logging.getLogger(__name__)

#: The Ray worker that owns a run, ``<pid>:<start ticks>``: when it is gone, the run is an orphan.
OWNER_VAR = "AUTOSCI_RAY_OWNER"
#: Which lab (driver work folder) a run belongs to, so a sweep never touches another lab's runs.
JOB_VAR = "AUTOSCI_RAY_JOB"
#: The Ray node a run is on (its id), for whoever looks at the node's processes.
NODE_VAR = "AUTOSCI_RAY_NODE"
#: Where a node keeps unpacked task folders and attempts' scratch folders (default: the temp dir).
SCRATCH_VAR = "AUTOSCI_RAY_SCRATCH"
_POLL_S = 0.1


@dataclass(frozen=True)
class NodeSettings:
    """What the driver tells every attempt, besides the task and the request."""

    job: str
    cpus: int
    sandbox: SandboxMode
    grace_s: float
    max_log_bytes: int


def pack_folder(root: Path) -> bytes:
    """A gzipped tar of ``root`` (a workspace copy of the task folder), links kept as links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        tar.add(str(root), arcname=".")
    return buf.getvalue()


def scratch_root() -> Path:
    return Path(os.environ.get(SCRATCH_VAR) or Path(tempfile.gettempdir()) / "autosci-ray").expanduser()


def unpack_task(bundle: bytes) -> Path:
    """The task folder of ``bundle`` on this node, unpacked once (concurrent tasks wait for it)."""
    digest = hashlib.sha256(bundle).hexdigest()[:20]
    dest = scratch_root() / "tasks" / digest
    done = dest / ".autosci-unpacked"
    if done.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            if dest.exists():
                shutil.rmtree(dest)
            tmp = dest.parent / f".{digest}.{uuid.uuid4().hex[:8]}"
            with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
                # "data": no absolute paths, no links out of the folder, no device files.
                tar.extractall(tmp, filter="data")
            (tmp / ".autosci-unpacked").write_text(digest, encoding="utf-8")
            tmp.rename(dest)
    return dest


def _environ_of(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key.startswith(b"AUTOSCI_"):
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def _owner_alive(owner: str) -> bool:
    pid_text, _, ticks_text = owner.partition(":")
    try:
        pid, ticks = int(pid_text), int(ticks_text)
    except ValueError:
        return False
    return is_running(pid, ticks)


def sweep_orphans(job: str | None = None, experiment_id: str | None = None) -> int:
    """KILL this node's runs whose Ray worker is gone; with ``job`` and ``experiment_id``, also an
    earlier attempt of that experiment of that lab (its driver died and a new one runs it again).

    Returns how many processes were killed. Linux only (reads ``/proc``)."""
    if not os.path.isdir("/proc"):
        return 0
    me = os.getpid()
    killed = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        env = _environ_of(int(entry.name))
        owner = env.get(OWNER_VAR)
        if owner is None:
            continue
        same_attempt = (job is not None and env.get(JOB_VAR) == job and experiment_id is not None
                        and env.get(RUN_MARKER, "").startswith(f"{experiment_id}@"))
        if same_attempt or not _owner_alive(owner):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    if killed:
        log.warning("killed %d orphaned experiment process(es) on this node", killed)
    return killed


def _node_slot(cpus: int) -> Slot:
    """The slot Ray gave this task: its GPUs (Ray sets ``CUDA_VISIBLE_DEVICES``), else its CPUs."""
    import ray

    gpu_ids = [str(i) for i in ray.get_gpu_ids()]
    if not gpu_ids:
        return Slot(index=0, threads=cpus)
    names = {g.index: g.name for g in detect_gpus()}
    return Slot(index=0, threads=cpus, gpu=Gpu(index=",".join(gpu_ids), name=names.get(gpu_ids[0], "GPU")))


def node_name() -> tuple[str, str]:
    """(this node's Ray id, ``"<host>/<ip> (ray node <id>)"`` for provenance)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    ip = ray.util.get_node_ip_address()
    return node_id, f"{socket.gethostname()}/{ip} (ray node {node_id})"


_sandboxes: dict[tuple[str, bool], Sandbox] = {}


def run_on_node(bundle: bytes, task: ResearchTask, request: RunRequest, settings: NodeSettings) -> dict[str, Any]:
    """The body of one Ray task: run ``request`` here, return the result and the log.

    ``ray.cancel`` raises ``KeyboardInterrupt`` in this thread; the run's process tree is then killed
    (TERM, grace, KILL) before the interrupt goes on, so a cancelled task leaves nothing running.
    """
    eid = request.experiment_id
    node_id, node = node_name()
    sweep_orphans(settings.job, eid)
    root = unpack_task(bundle)
    node_task = task.model_copy(update={"root": root})
    data_dir = ensure_prepared(node_task)
    key = (settings.sandbox, node_task.network)
    if key not in _sandboxes:
        _sandboxes[key] = make_sandbox(settings.sandbox, network=node_task.network)
    exp_dir = scratch_root() / "runs" / settings.job / f"{eid}-{uuid.uuid4().hex[:8]}"
    exp_dir.mkdir(parents=True)
    running: list[ManagedProcess] = []
    lock = threading.Lock()
    interrupted = threading.Event()

    def register(proc: ManagedProcess) -> bool:
        with lock:
            if interrupted.is_set():
                return False
            running.append(proc)
            return True

    owner = f"{os.getpid()}:{start_ticks(os.getpid())}"
    attempt = Attempt(task=node_task, exp_dir=exp_dir, slot=_node_slot(settings.cpus), sandbox=_sandboxes[key],
                      limits=limits_for(node_task.limits), data_dir=data_dir, max_log_bytes=settings.max_log_bytes,
                      grace_s=settings.grace_s, build_workspace=lambda dest: Path(shutil.copytree(root, dest, symlinks=True)),
                      register=register, extra_env={OWNER_VAR: owner, JOB_VAR: settings.job, NODE_VAR: node_id}, node=node,
                      die_with_parent=True)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = run_attempt(request, attempt)
        except BaseException as exc:  # handed to the Ray thread, which re-raises it
            outcome["error"] = exc

    # The run goes in a helper thread so that this (Ray's) thread stays in Python code, where
    # ray.cancel's KeyboardInterrupt can reach it; a blocking waitpid would not see it.
    worker = threading.Thread(target=work, name=f"autosci-ray-{eid}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(_POLL_S)
    except KeyboardInterrupt:
        with lock:
            interrupted.set()
            procs = list(running)
        for proc in procs:
            proc.cancel()
        # run() returns once the killer swept the whole tree; bounded, in case the attempt was still
        # preparing data (nothing to kill yet) and is stuck there.
        worker.join(2 * settings.grace_s + 10.0)
        shutil.rmtree(exp_dir, ignore_errors=True)
        raise
    try:
        if "error" in outcome:
            raise outcome["error"]
        result, _workspace = outcome["value"]
        log_bytes = (exp_dir / "run.log").read_bytes() if (exp_dir / "run.log").is_file() else b""
        return {"result": result.model_dump_json() if result is not None else None, "log": log_bytes,
                "node_id": node_id, "node": node}
    finally:
        shutil.rmtree(exp_dir, ignore_errors=True)


__all__ = ["JOB_VAR", "NODE_VAR", "NodeSettings", "OWNER_VAR", "SCRATCH_VAR", "node_name", "pack_folder", "run_on_node",
           "sweep_orphans", "unpack_task"]
