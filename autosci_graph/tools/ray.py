"""RayExecutor: each experiment a Ray task on a cluster, GPUs and CPUs as Ray resources.

The lab stays the Ray *driver*: it keeps the run folder, the checkpoint and every result, exactly as
with :class:`~autosci_graph.tools.local.LocalExecutor`; the cluster only runs experiments. Layout of
the work folder on the lab's machine::

    <work_dir>/experiments/<experiment_id>/
        request.json    what was asked (written before the task is submitted)
        run.log         the run's log, as the node sent it back
        result.json     the RunResult (provenance names the node), written when the task is over

What travels, and how (see :mod:`autosci_graph.tools.ray_node` for the node's side):

* the task folder, once, as a gzipped tar in Ray's object store (nothing assumes a shared
  filesystem); each node unpacks it once, builds each experiment's workspace from it, and
  prepares the task's data itself;
* per experiment, the request (knobs, diff, seed) and a few settings; never the lab's environment:
  the run gets the node's allow-listed environment, as a local run gets this machine's.

Resources: a GPU slot asks Ray for ``num_gpus=1`` (Ray sets ``CUDA_VISIBLE_DEVICES``), a CPU slot
for ``num_cpus=cpus_per_slot``. At most ``slots`` tasks are in flight; Ray places them.

Failures:

* time budget: the node kills the run's process group at the task's timeout (TERM, then KILL); a
  task that has not come back ``cancel_slack_s`` after that (a stuck node) is cancelled with
  ``ray.cancel`` (then ``force=True``) and recorded as a timeout;
* a node dies mid-experiment: Ray runs the task again on another node (``max_retries``, Ray's
  retry of system failures); the lab sees one result, so the budget counts it once. An experiment
  whose node or worker dies on every try (or that Ray's memory monitor kills every time) is a
  ``crash`` (``oom``) result, like any failed run: the lab goes on;
* a node cannot run experiments at all (no bubblewrap there, its data preparation fails): the
  project error from the node is raised to the lab, naming the node's problem;
* the lab dies (SIGKILL): Ray tasks share their owner's fate, so Ray stops them; an experiment
  without ``result.json`` is run again by the resumed lab (same id, one result), and the node kills
  what the dead attempt left running.

The Ray connection is process-wide (``ray.init``): it is opened on first use and left open when the
executor closes, for the next executor in the same process; ``ray.shutdown()`` is the caller's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from autosci_graph.errors import AutosciError, SettingsError
from autosci_graph.state import RunRequest, RunResult, RunStatus
from autosci_graph.task import ResearchTask
from autosci_graph.tools.local import DEFAULT_MAX_LOG_BYTES, FolderResults, atomic_write, experiment_folder, load_stored
from autosci_graph.tools.prepare import ensure_prepared
from autosci_graph.tools.ray_node import NodeSettings, pack_folder, run_on_node
from autosci_graph.tools.sandbox import Sandbox, SandboxMode, make_sandbox
from autosci_graph.tools.workspace import make_workspace

log = logging.getLogger(__name__)

RayDevice = Literal["auto", "cpu", "cuda"]
INSTALL_HINT = "pip install 'autosci_graph[cluster]'"
#: Above this the task folder is refused: it travels through the object store to every node.
MAX_BUNDLE_BYTES = 512 * 1024 * 1024


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SettingsError(f"the Ray executor needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None = None) -> str:
    """Connect this process to a Ray cluster (once); return the address used.

    ``address``, else ``RAY_ADDRESS`` (Ray's own convention), else Ray's default (a cluster started on
    this machine with ``ray start``, or a new local one). An address nobody answers at fails at once
    with the fix, instead of Ray's minute of retries.
    """
    ray = _import_ray()
    addr = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return addr or "auto"
    if addr and addr not in ("auto", "local") and "://" not in addr:
        host, sep, port = addr.rpartition(":")
        if not sep or not port.isdigit():
            raise SettingsError(f"Ray address {addr!r}: expected HOST:PORT (e.g. 127.0.0.1:6379), ray://HOST:PORT or auto")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise SettingsError(
                f"no Ray cluster answers at {addr} ({exc}); start one there with `ray start --head --port={port}`, "
                "or fix --ray-address / RAY_ADDRESS"
            ) from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from a lab
    ray.init(address=addr, log_to_driver=False, namespace="autosci")
    log.info("connected to Ray cluster at %s: %s", addr or "auto", ray.cluster_resources())
    return addr or "auto"


@dataclass
class _InFlight:
    request: RunRequest
    ref: Any
    dispatched: float
    cancelled_at: float | None = None
    forced_at: float | None = None


class RayExecutor(FolderResults):
    """Run a task's experiments as Ray tasks on a cluster, at most ``slots`` at a time.

    Setup: every node needs the same Python environment as the lab (``autosci_graph[cluster]``
    installed; bubblewrap unless ``sandbox="none"``); see the README, "On a cluster".

    Args:
        task: the task to run.
        work_dir: where experiment folders, logs and results go on this machine.
        address: the cluster (``HOST:PORT``, ``ray://HOST:PORT``, ``auto``); default ``RAY_ADDRESS``.
        slots: experiments in flight at once. Default: the cluster's GPUs for GPU slots, else its
            CPUs divided by ``cpus_per_slot``.
        cpus_per_slot: CPUs a CPU experiment asks Ray for (also its ``OMP_NUM_THREADS``).
        device: ``"cuda"`` (each experiment asks for ``num_gpus=1``), ``"cpu"``, or ``"auto"``
            (GPUs when the cluster has any).
        sandbox: how runs are contained on the nodes (as for LocalExecutor); also the sandbox of
            this machine's own checks (smoke tests, final evaluation).
        grace_s: seconds between TERM and KILL, on the node and between the two ``ray.cancel``.
        max_retries: how often Ray re-runs an experiment whose node or worker died.
        cancel_slack_s: how long past its budget a task may stay silent before ``ray.cancel``.
        scheduling_strategy: Ray's ``"DEFAULT"`` or ``"SPREAD"`` (one experiment per node first).

    Example::

        with RayExecutor(load_task("examples/gpt_bpb"), "runs/demo", address="10.0.0.1:6379") as ex:
            result = ex.run(Change(knobs={"lr": 0.003}), seed=1)
            print(result.status, result.metric, result.provenance.node)

    Thread-safe; ``submit`` is idempotent by experiment id, also across restarts.
    """

    def __init__(
        self,
        task: ResearchTask,
        work_dir: str | os.PathLike[str],
        *,
        address: str | None = None,
        slots: int | None = None,
        cpus_per_slot: int = 1,
        device: RayDevice = "auto",
        sandbox: SandboxMode = "auto",
        grace_s: float = 5.0,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
        max_retries: int = 3,
        cancel_slack_s: float = 600.0,
        scheduling_strategy: str = "DEFAULT",
    ) -> None:
        if cpus_per_slot < 1:
            raise SettingsError(f"cpus_per_slot must be at least 1, got {cpus_per_slot}")
        if slots is not None and slots < 1:
            raise SettingsError(f"slots must be at least 1, got {slots}")
        if device not in ("auto", "cpu", "cuda"):
            raise SettingsError(f"device {device!r}: expected auto, cpu or cuda")
        self.task = task
        self.work_dir = Path(work_dir).expanduser().resolve()
        self.grace_s = grace_s
        self.cancel_slack_s = cancel_slack_s
        self.max_retries = max_retries
        self.sandbox: Sandbox = make_sandbox(sandbox, network=task.network)
        # Prepared here too: the lab's smoke checks and final evaluation run on this machine, and a
        # missing dataset should fail now, not on every node.
        self.data_dir = ensure_prepared(task)
        ray = _import_ray()
        self.address = connect(address)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if device == "cuda" and gpus == 0:
            raise SettingsError("device='cuda' but the Ray cluster has no GPU; start GPU nodes or use device='cpu'")
        self.gpu = device == "cuda" or (device == "auto" and gpus > 0)
        default_slots = gpus if self.gpu else int(resources.get("CPU", 1)) // cpus_per_slot
        self._slots = slots or max(1, default_slots)
        self.job = hashlib.sha256(f"{socket.gethostname()}:{self.work_dir}".encode()).hexdigest()[:12]
        (self.work_dir / "experiments").mkdir(parents=True, exist_ok=True)
        self._bundle_ref = ray.put(self._bundle())
        self._settings = NodeSettings(job=self.job, cpus=cpus_per_slot, sandbox=sandbox, grace_s=grace_s,
                                      max_log_bytes=max_log_bytes)
        options: dict[str, Any] = {"num_cpus": cpus_per_slot, "num_gpus": 1 if self.gpu else 0,
                                   "max_retries": max_retries, "retry_exceptions": False}
        if scheduling_strategy != "DEFAULT":
            options["scheduling_strategy"] = scheduling_strategy
        self._remote = ray.remote(run_on_node).options(**options)
        self._ray = ray
        super().__init__()
        self._queue: queue.SimpleQueue[RunRequest] = queue.SimpleQueue()
        self._inflight: dict[str, _InFlight] = {}
        self._cancelled: list[_InFlight] = []  # in flight when cancel() came; close() waits for them
        self._closing = False
        self._loop = threading.Thread(target=self._drive, name="autosci-ray", daemon=True)
        self._loop.start()
        log.info("Ray executor for task %s: %d slot(s) of %s, work dir %s", task.name, self._slots,
                 "1 GPU" if self.gpu else f"{cpus_per_slot} CPU", self.work_dir)

    def _bundle(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="autosci-bundle-") as tmp:
            root = make_workspace(self.task, Path(tmp) / "task", skip=[self.work_dir])
            data = pack_folder(root)
        if len(data) > MAX_BUNDLE_BYTES:
            raise SettingsError(
                f"task folder {self.task.root} packs to {len(data) >> 20} MiB, more than the {MAX_BUNDLE_BYTES >> 20} MiB "
                "the Ray executor ships to each node; keep data out of it (the task's prepare step makes it on each "
                "node) or list large paths in task.toml's workspace excludes"
            )
        return data

    # -- the Executor hooks -------------------------------------------------------------------

    @property
    def slots(self) -> int:
        return self._slots

    def experiment_dir(self, experiment_id: str) -> Path:
        """The folder of one experiment on this machine (it may not exist yet)."""
        return experiment_folder(self.work_dir, experiment_id)

    def submit(self, request: RunRequest) -> None:
        eid = request.experiment_id
        exp_dir = self.experiment_dir(eid)
        with self._cond:
            if self._closed:
                raise RuntimeError("this executor is closed; create a new one to run more experiments")
            if eid in self._pending or eid in self._results:
                return
            stored = load_stored(exp_dir)
            if stored is not None:
                if stored.change != request.change or stored.seed != request.seed:
                    log.warning("experiment %s already finished with another change/seed; returning the stored result", eid)
                self._results[eid] = stored
                return
            self._pending[eid] = request
            self._queue.put(request)
            self._cond.notify_all()

    def cancel(self) -> None:
        """Refuse new work and ``ray.cancel`` every experiment in flight (each node kills its run's
        tree: TERM, grace, KILL); returns at once, :meth:`close` waits for the tasks to end."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cancelled = list(self._inflight.values())
            self._cond.notify_all()
        for item in self._cancelled:
            self._ray.cancel(item.ref, force=False)

    def close(self) -> None:
        """Cancel every experiment in flight (their runs are killed on the nodes) and wait for it."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
        self.cancel()
        refs = [item.ref for item in self._cancelled]
        if refs:  # the node kills each run's tree (TERM, grace, KILL) before its task ends
            _, stuck = self._ray.wait(refs, num_returns=len(refs), timeout=self.grace_s + 10.0)
            for ref in stuck:
                self._ray.cancel(ref, force=True)
        self._loop.join(timeout=self.grace_s + 30.0)

    # -- the driver loop ----------------------------------------------------------------------

    def _drive(self) -> None:
        """The driver loop; if it breaks (the cluster went away), every waiter hears why."""
        try:
            self._drive_loop()
        except Exception as exc:
            log.exception("the Ray executor's driver loop failed")
            with self._cond:
                for eid in [*self._pending, *self._inflight]:
                    self._errors[eid] = exc
                self._pending.clear()
                self._inflight.clear()
                self._cond.notify_all()

    def _drive_loop(self) -> None:
        """Dispatch queued requests to free slots, collect finished tasks, enforce the backstop."""
        while True:
            with self._cond:
                if self._closed:
                    return
                while len(self._inflight) < self._slots and not self._queue.empty():
                    request = self._queue.get()
                    self._prepare_folder(request)
                    ref = self._remote.remote(self._bundle_ref, self.task, request, self._settings)
                    self._inflight[request.experiment_id] = _InFlight(request, ref, time.monotonic())
                if not self._inflight:
                    self._cond.wait(0.5)
                    continue
                by_ref = {item.ref: eid for eid, item in self._inflight.items()}
            ready, _ = self._ray.wait(list(by_ref), num_returns=1, timeout=0.2)
            for ref in ready:
                self._collect(by_ref[ref])
            self._backstop()

    def _prepare_folder(self, request: RunRequest) -> None:
        """The experiment's folder here, as a local run would have it before it starts."""
        exp_dir = self.experiment_dir(request.experiment_id)
        if exp_dir.exists():  # left by a lab that died mid-run: the node kills what it left running
            shutil.rmtree(exp_dir)
        exp_dir.mkdir(parents=True)
        atomic_write(exp_dir / "request.json", request.model_dump_json(indent=2))
        if request.change.diff and request.change.diff.strip():
            (exp_dir / "change.diff").write_text(request.change.diff, encoding="utf-8")

    def _collect(self, eid: str) -> None:
        ray = self._ray
        with self._cond:
            item = self._inflight.get(eid)
            if item is None or self._closed:
                return
        result: RunResult | None = None
        error: BaseException | None = None
        try:
            reply = ray.get(item.ref)
            result = self._store(eid, reply)
            if result is None:  # the node stopped it without being told to: never leave a waiter hanging
                error = RuntimeError(f"the Ray node {reply['node']} returned no result for {eid}")
        except (ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError) as exc:
            if item.cancelled_at is not None:
                result = self._timed_out(item)
            elif isinstance(exc, ray.exceptions.WorkerCrashedError):
                result = self._lost(item, "crash", f"its Ray worker died on every try ({self.max_retries} retries): {exc}")
            else:
                error = exc
        except ray.exceptions.RayTaskError as exc:  # our code failed on the node: a broken system
            cause = getattr(exc, "cause", None) or exc
            if isinstance(cause, AutosciError):  # e.g. no bubblewrap there: the CLI says it in one line
                error = AutosciError(f"on a Ray node: {cause.args[0]}", code=cause.code)
            else:
                error = RuntimeError(f"{type(cause).__name__} on the Ray node: {cause}")
        except ray.exceptions.OutOfMemoryError as exc:  # Ray's memory monitor killed it, on every try
            result = self._lost(item, "oom", f"Ray's memory monitor killed it on every try: {str(exc)[:300]}")
        except ray.exceptions.NodeDiedError as exc:
            result = self._lost(item, "crash", f"its Ray node died on every try ({self.max_retries} retries): {str(exc)[:300]}")
        except ray.exceptions.RayError as exc:  # object lost, unschedulable, ...: the cluster is broken
            error = exc
        with self._cond:
            self._inflight.pop(eid, None)
            self._pending.pop(eid, None)
            if result is not None:
                self._results[eid] = result
            elif error is not None:
                log.error("experiment %s: %s", eid, error)
                self._errors[eid] = error
            self._cond.notify_all()

    def _store(self, eid: str, reply: dict[str, Any]) -> RunResult | None:
        exp_dir = self.experiment_dir(eid)
        if reply["result"] is None:  # cancelled on the node before it finished
            return None
        log_path = exp_dir / "run.log"
        log_path.write_bytes(reply["log"])
        result = RunResult.model_validate_json(reply["result"])
        # The node's folders are gone: the log now lives here, the workspace nowhere.
        result = result.model_copy(update={"log_path": str(log_path), "workspace": None})
        atomic_write(exp_dir / "result.json", result.model_dump_json(indent=2))
        log.info("experiment %s on %s: %s %s", eid, reply["node"], result.status, result.metric)
        return result

    def _timed_out(self, item: _InFlight) -> RunResult:
        return self._lost(item, "timeout", f"no answer from its Ray node {self.task.timeout:.0f} s + {self.cancel_slack_s:.0f} s "
                          "after the budget started; cancelled through ray.cancel")

    def _lost(self, item: _InFlight, status: RunStatus, message: str) -> RunResult:
        """The result of an experiment whose node never sent one: a failure the lab records and goes past."""
        eid = item.request.experiment_id
        exp_dir = self.experiment_dir(eid)
        (exp_dir / "run.log").write_text(f"[autosci: {message}]\n", encoding="utf-8")
        result = RunResult(experiment_id=eid, status=status, change=item.request.change, seed=item.request.seed,
                           metric_name=self.task.metric.name, error=message, log_tail=message,
                           log_path=str(exp_dir / "run.log"), started_at=time.time() - (time.monotonic() - item.dispatched),
                           ended_at=time.time())
        atomic_write(exp_dir / "result.json", result.model_dump_json(indent=2))
        return result

    def _backstop(self) -> None:
        """ray.cancel a task that overran its budget by more than ``cancel_slack_s``, then force it,
        then give up on it: the lab gets a timeout and its slot back either way."""
        now = time.monotonic()
        limit = self.task.timeout + self.grace_s + self.cancel_slack_s
        patience = 2 * self.grace_s + 2.0  # TERM, grace, KILL on the node, and Ray's messages
        with self._cond:
            items = list(self._inflight.values())
        for item in items:
            eid = item.request.experiment_id
            if item.cancelled_at is None and now - item.dispatched > limit:
                log.warning("experiment %s: no answer %.0f s after dispatch; ray.cancel", eid, now - item.dispatched)
                item.cancelled_at = now
                self._ray.cancel(item.ref, force=False)
            elif item.cancelled_at is not None and item.forced_at is None and now - item.cancelled_at > patience:
                # The interrupt did not end it (the worker is stuck in C code, or stopped): Ray kills the
                # worker, the kernel then kills the run (PR_SET_PDEATHSIG), the node's next task sweeps the rest.
                log.warning("experiment %s: still running after ray.cancel; ray.cancel(force=True)", eid)
                item.forced_at = now
                self._ray.cancel(item.ref, force=True)
            elif item.forced_at is not None and now - item.forced_at > patience:
                # Even that got no answer (a frozen worker cannot take Ray's kill): stop waiting for it.
                log.error("experiment %s: its Ray worker does not answer even ray.cancel(force=True); recorded as a "
                          "timeout and abandoned (its node may need a look)", eid)
                result = self._timed_out(item)
                with self._cond:
                    self._inflight.pop(eid, None)
                    self._pending.pop(eid, None)
                    self._results[eid] = result
                    self._cond.notify_all()


__all__ = ["RayExecutor", "connect"]
