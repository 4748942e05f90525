"""One attempt at one experiment in a folder: workspace, change, process, metrics, result.

Every executor runs an experiment the same way once it has a folder to run it in; only where that
folder is (this machine, a Ray node) and who watches the process differ. This module is that
common part, so a local run and a run on a cluster node give the same statuses, metrics and
provenance for the same script.

Layout of the folder (``exp_dir``)::

    workspace/      the private copy of the task folder the run used
    change.diff     the code change, if any
    run.log         stdout+stderr, capped
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autosci_graph.state import Provenance, RunRequest, RunResult
from autosci_graph.task import ResearchTask
from autosci_graph.tools.classify import classify, log_tail
from autosci_graph.tools.command import build_command
from autosci_graph.tools.diffs import DiffError
from autosci_graph.tools.env import build_run_env
from autosci_graph.tools.limits import ResourceLimits
from autosci_graph.tools.metrics import parse_metrics
from autosci_graph.tools.process import ManagedProcess
from autosci_graph.tools.provenance import data_hash, env_fingerprint
from autosci_graph.tools.sandbox import Sandbox
from autosci_graph.tools.slots import Slot
from autosci_graph.tools.workspace import apply_diff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """Where and how one attempt runs (everything but the request itself)."""

    task: ResearchTask
    exp_dir: Path
    slot: Slot
    sandbox: Sandbox
    limits: ResourceLimits
    data_dir: Path
    max_log_bytes: int
    grace_s: float
    #: Creates the workspace at the given (new) path from the task folder and returns it.
    build_workspace: Callable[[Path], Path]
    #: Called with the process before it starts; False means "closing: do not start it".
    register: Callable[[ManagedProcess], bool] = lambda _proc: True
    #: Called once the process is over, whatever happened.
    unregister: Callable[[], None] = lambda: None
    #: Extra variables for the run (on top of the allow-listed environment), e.g. a node marker.
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: The machine the run is on, for provenance (``""``: this one, not worth naming).
    node: str = ""
    #: The kernel kills the run if the thread that started it dies (see ManagedProcess).
    die_with_parent: bool = False


def run_attempt(request: RunRequest, at: Attempt) -> tuple[RunResult | None, Path | None]:
    """Run ``request`` in ``at.exp_dir`` (which must exist and be empty of an earlier attempt).

    Returns the result (``None`` when the attempt was cancelled before it finished: it has no
    result and must run again) and the workspace it used (``None`` when nothing was built).
    A change that does not apply is a ``bad_change`` result, and nothing is run.
    """
    eid = request.experiment_id
    task = at.task
    log_path = at.exp_dir / "run.log"
    skeleton = RunResult(
        experiment_id=eid, status="bad_change", change=request.change, seed=request.seed,
        metric_name=task.metric.name, log_path=str(log_path), started_at=time.time(),
    )

    def bad_change(message: str) -> RunResult:
        log_path.write_text(f"[autosci: bad change, nothing was run] {message}\n", encoding="utf-8")
        return skeleton.model_copy(update={"error": message, "log_tail": message, "ended_at": time.time()})

    try:
        knobs = task.validate_overrides(request.change.knobs)
    except ValueError as exc:
        return bad_change(str(exc)), None
    workspace = at.build_workspace(at.exp_dir / "workspace")
    diff = request.change.diff
    if diff and diff.strip():
        (at.exp_dir / "change.diff").write_text(diff, encoding="utf-8")
        try:
            apply_diff(workspace, diff, task.editable)
        except DiffError as exc:
            return bad_change(f"diff rejected: {exc}"), workspace
    argv = build_command(task, knobs, request.seed, at.data_dir)
    env = build_run_env(task, at.slot, run_id=f"{eid}@{uuid.uuid4().hex[:8]}", data_dir=at.data_dir)
    env.update(at.extra_env)
    proc = at.sandbox.process(argv, workspace=workspace, env=env, readonly=[at.data_dir], gpu=at.slot.gpu is not None,
                              limits=at.limits, timeout=task.timeout, log_path=log_path,
                              max_log_bytes=at.max_log_bytes, grace_s=at.grace_s, die_with_parent=at.die_with_parent)
    if not at.register(proc):
        return None, workspace
    try:
        outcome = proc.run()
    finally:
        at.unregister()
    if outcome.cancelled:
        return None, workspace  # not finished: no result, so a resumed lab runs it again
    if outcome.truncated:
        log.info("experiment %s printed %d bytes; its log was capped", eid, outcome.output_bytes)
    text = log_path.read_bytes().decode("utf-8", errors="replace")
    parsed = parse_metrics(text, task.metric.name, task.metric.regex)
    status, error = classify(outcome, parsed, text, task.timeout)
    metric = parsed.value if parsed.value is not None and math.isfinite(parsed.value) else None
    provenance = Provenance(
        command=argv,
        cwd=str(workspace),
        seed=request.seed,
        slot=at.slot.label,
        env_fingerprint=env_fingerprint(at.slot),
        data_hash=data_hash(at.data_dir),
        task_root=str(task.root),
        task_name=task.name,
        sandbox=at.sandbox.kind,
        network=at.sandbox.network,
        env_names=sorted(env),
        limits=at.limits.as_dict(),
        node=at.node,
    )
    result = RunResult(
        experiment_id=eid,
        status=status,
        change=request.change,
        seed=request.seed,
        metric_name=task.metric.name,
        metric=metric,  # a failed run may still have printed a (finite) metric; status decides
        metrics=parsed.metrics,
        curve=parsed.curve,
        error=error,
        log_tail=log_tail(text),
        log_path=str(log_path),
        workspace=str(workspace),
        started_at=outcome.started_at,
        ended_at=outcome.ended_at,
        provenance=provenance,
    )
    return result, workspace


__all__ = ["Attempt", "run_attempt"]
