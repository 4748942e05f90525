"""LocalExecutor: experiments as processes on this machine, one per device slot.

Layout of a work folder::

    <work_dir>/experiments/<experiment_id>/
        request.json    what was asked (written before the run)
        workspace/      the private copy of the task folder the run used
        change.diff     the code change, if any
        run.log         stdout+stderr, capped
        result.json     the RunResult, written atomically when the run is over

``result.json`` is the commit point: an experiment with one is finished, and a new executor on
the same work folder returns it instead of running it again. A folder without one (the lab died
mid-run) is wiped and run again.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from autosci_graph.errors import AutosciError
from autosci_graph.state import RunRequest, RunResult
from autosci_graph.task import ResearchTask
from autosci_graph.tools.attempt import Attempt, run_attempt
from autosci_graph.tools.base import Executor
from autosci_graph.tools.limits import limits_for
from autosci_graph.tools.prepare import ensure_prepared
from autosci_graph.tools.process import ManagedProcess, kill_orphans
from autosci_graph.tools.sandbox import Sandbox, SandboxMode, make_sandbox
from autosci_graph.tools.slots import DeviceKind, Slot, plan_slots
from autosci_graph.tools.workspace import make_workspace

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
DEFAULT_MAX_LOG_BYTES = 20 * 1024 * 1024


class FolderResults(Executor):
    """What the local and the Ray executor share: requests pending, results and errors in memory
    under one condition, each finished result also in its experiment's folder, and ``wait`` on
    them (a result already in the folder, from before a restart, answers without a run)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[str, RunRequest] = {}
        self._results: dict[str, RunResult] = {}
        self._errors: dict[str, BaseException] = {}
        self._closed = False

    def experiment_dir(self, experiment_id: str) -> Path:
        raise NotImplementedError

    def wait(self, experiment_ids: Iterable[str], timeout: float | None = None) -> list[RunResult]:
        ids = list(dict.fromkeys(experiment_ids))
        if not ids:
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            for eid in ids:
                if eid not in self._pending and eid not in self._results and eid not in self._errors:
                    stored = load_stored(self.experiment_dir(eid))
                    if stored is None:
                        raise KeyError(f"unknown experiment {eid!r}: submit it first")
                    self._results[eid] = stored
            while True:
                for eid in ids:
                    if eid in self._errors:
                        err = self._errors[eid]
                        if isinstance(err, AutosciError):
                            raise err  # a project error (no sandbox, data preparation) prints as one line
                        raise RuntimeError(f"{type(self).__name__} failed while running {eid}: {err}") from err
                done = [self._results[e] for e in ids if e in self._results]
                if done:
                    return done
                if self._closed:
                    raise RuntimeError(f"the executor was closed before {ids} finished; they were not run to the end")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._cond.wait(remaining)


class LocalExecutor(FolderResults):
    """Run a task's experiments as local processes, at most one per device slot.

    Setup: the task's data is prepared (once, cached; see :func:`ensure_prepared`) when the
    executor is created, so a missing dataset fails here, as an exception, not as a run result.

    Args:
        task: the task to run.
        work_dir: where experiment folders, logs and results go (created if needed).
        slots: how many runs at once. Default: one per visible GPU, else one per
            ``threads_per_slot`` CPU cores.
        threads_per_slot: CPU threads a run may use (``OMP_NUM_THREADS`` and friends).
        max_log_bytes: cap on each run's log; output past it is drained and dropped except its end.
        data_dir: prepared data folder (default: the task's shared cache folder).
        grace_s: seconds between TERM and KILL when a run is stopped.
        device: ``"auto"`` (GPUs if any), ``"cpu"`` (ignore GPUs) or ``"cuda"`` (require them).
        keep_workspaces: keep each run's workspace copy after it ends (for inspection).
        sandbox: ``"auto"`` (default: bubblewrap, see :mod:`autosci_graph.tools.sandbox`; a
            missing bubblewrap raises :class:`~autosci_graph.tools.sandbox.SandboxError` naming
            the install command), ``"bwrap"``, or ``"none"`` to run unsandboxed.

    Example::

        with LocalExecutor(load_task("examples/gpt_bpb"), "runs/demo") as ex:
            result = ex.run(Change(knobs={"lr": 0.003}), seed=1)
            print(result.status, result.metric)

    Thread-safe; ``submit`` is idempotent by experiment id, also across restarts.
    """

    def __init__(
        self,
        task: ResearchTask,
        work_dir: str | os.PathLike[str],
        *,
        slots: int | None = None,
        threads_per_slot: int = 1,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
        data_dir: str | os.PathLike[str] | None = None,
        grace_s: float = 5.0,
        device: DeviceKind = "auto",
        keep_workspaces: bool = True,
        sandbox: SandboxMode = "auto",
    ) -> None:
        self.task = task
        self.sandbox: Sandbox = make_sandbox(sandbox, network=task.network)
        self.limits = limits_for(task.limits)
        self.work_dir = Path(work_dir).expanduser().resolve()
        self.max_log_bytes = max_log_bytes
        self.grace_s = grace_s
        self.keep_workspaces = keep_workspaces
        self._slots: list[Slot] = plan_slots(slots, threads_per_slot, device)
        self.data_dir = ensure_prepared(task, Path(data_dir) if data_dir else None)
        (self.work_dir / "experiments").mkdir(parents=True, exist_ok=True)
        super().__init__()
        self._queue: queue.Queue[RunRequest | None] = queue.Queue()
        self._running: dict[str, ManagedProcess] = {}
        self._workers = [threading.Thread(target=self._work, args=(s,), name=f"autosci-slot-{s.label}", daemon=True) for s in self._slots]
        for w in self._workers:
            w.start()
        log.info("executor for task %s: %d slot(s) %s, work dir %s, %s", task.name, len(self._slots), [s.label for s in self._slots],
                 self.work_dir, self.sandbox.describe())

    # -- the Executor hooks -------------------------------------------------------------------

    @property
    def slots(self) -> int:
        return len(self._slots)

    @property
    def slot_labels(self) -> list[str]:
        """The slots as provenance names them, e.g. ``["cpu:0", "cpu:1"]``."""
        return [s.label for s in self._slots]

    def experiment_dir(self, experiment_id: str) -> Path:
        """The folder of one experiment (it may not exist yet)."""
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

    def cancel(self) -> None:
        """Refuse new work and start killing every run (TERM to its process group and marked
        processes, KILL after ``grace_s``); queued runs never start. Returns at once."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            running = list(self._running.values())
            self._cond.notify_all()
        for proc in running:
            proc.cancel()  # the kill runs in its own thread
        for _ in self._workers:
            self._queue.put(None)

    def close(self) -> None:
        self.cancel()
        for w in self._workers:
            w.join(timeout=self.grace_s + 30.0)

    # -- inside a slot ------------------------------------------------------------------------

    def _work(self, slot: Slot) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            eid = request.experiment_id
            try:
                result = None if self._closed else self._execute(request, slot)
            except Exception as exc:  # a broken system (disk full, permissions): tell the waiter
                log.exception("executor failure on experiment %s", eid)
                with self._cond:
                    self._pending.pop(eid, None)
                    self._errors[eid] = exc
                    self._cond.notify_all()
                continue
            with self._cond:
                self._pending.pop(eid, None)
                if result is not None:
                    self._results[eid] = result
                self._cond.notify_all()

    def _execute(self, request: RunRequest, slot: Slot) -> RunResult | None:
        eid = request.experiment_id
        exp_dir = self.experiment_dir(eid)
        if exp_dir.exists():  # left by a run that died with the lab: start it afresh
            kill_orphans(f"{eid}@", self.grace_s)  # its processes may still be running
            shutil.rmtree(exp_dir)
        exp_dir.mkdir(parents=True)
        atomic_write(exp_dir / "request.json", request.model_dump_json(indent=2))

        def register(proc: ManagedProcess) -> bool:
            with self._cond:
                if self._closed:
                    return False
                self._running[eid] = proc
                return True

        def unregister() -> None:
            with self._cond:
                self._running.pop(eid, None)

        attempt = Attempt(task=self.task, exp_dir=exp_dir, slot=slot, sandbox=self.sandbox, limits=self.limits,
                          data_dir=self.data_dir, max_log_bytes=self.max_log_bytes, grace_s=self.grace_s,
                          build_workspace=lambda dest: make_workspace(self.task, dest, skip=[self.work_dir]),
                          register=register, unregister=unregister)
        result, workspace = run_attempt(request, attempt)
        if result is None:
            return None
        if workspace is not None and not self.keep_workspaces and result.provenance is not None:
            shutil.rmtree(workspace, ignore_errors=True)
            result = result.model_copy(update={"workspace": None})
        return self._finish(exp_dir, result)

    def _finish(self, exp_dir: Path, result: RunResult) -> RunResult:
        atomic_write(exp_dir / "result.json", result.model_dump_json(indent=2))
        log.info("experiment %s: %s %s", result.experiment_id, result.status, result.metric)
        return result

def experiment_folder(work_dir: Path, experiment_id: str) -> Path:
    """``<work_dir>/experiments/<experiment_id>``, refusing ids that are not plain names."""
    if not _SAFE_ID.match(experiment_id) or experiment_id in (".", ".."):
        raise ValueError(f"experiment id {experiment_id!r} must be 1-128 letters, digits, '_', '.', '-'")
    return work_dir / "experiments" / experiment_id


def load_stored(exp_dir: Path) -> RunResult | None:
    """The finished result in an experiment folder (its commit point), or None."""
    path = exp_dir / "result.json"
    if not path.is_file():
        return None
    try:
        return RunResult.model_validate_json(path.read_bytes())
    except ValueError:
        log.warning("%s is unreadable; the experiment will run again", path)
        return None


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file.

    No fsync: after a power loss a torn ``result.json`` fails to parse and the experiment simply
    runs again (see ``load_stored``), which is cheaper than syncing every result.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_result(path: str | os.PathLike[str]) -> RunResult:
    """Read a ``result.json`` (as the executor or ``autosci run-one`` wrote it)."""
    return RunResult.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


__all__ = ["LocalExecutor", "atomic_write", "experiment_folder", "load_result", "load_stored"]
