"""Check before compute: a code change must apply, compile and pass the task's smoke command
before it may cost an experiment (OpenEvolve's cascade, cheapest check first).

A failure is not an experiment result: it goes back to the proposal's author with the error, for
a bounded revision, and never counts as a refutation or a dead end.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from autosci_graph.lab.changes import has_code
from autosci_graph.state import Change
from autosci_graph.task import ResearchTask
from autosci_graph.tools.codestate import files_at, original_files
from autosci_graph.tools.command import format_command
from autosci_graph.tools.diffs import DiffError
from autosci_graph.tools.env import build_run_env
from autosci_graph.tools.limits import limits_for
from autosci_graph.tools.sandbox import Sandbox, sandbox_or_none
from autosci_graph.tools.slots import Slot
from autosci_graph.tools.workspace import apply_diff, make_workspace


def precheck(task: ResearchTask, change: Change, *, data_dir: Path | None = None, smoke: bool = True,
             sandbox: Sandbox | None = None) -> str | None:
    """Why ``change`` (a full change: the champion's code with the increment stacked) must not run,
    or ``None`` when its code applies, the edited Python compiles and the smoke command passes.

    The smoke command runs contained like an experiment: in ``sandbox`` (the executor's), or
    bubblewrap when it works here (see :func:`~autosci_graph.tools.sandbox.sandbox_or_none`)."""
    if not has_code(change):
        return None
    original = original_files(task)
    try:
        files = files_at(task, change.diff, original)
    except DiffError as exc:
        return f"the change does not apply to the task's files: {exc}"
    for rel, text in files.items():
        if rel.endswith(".py") and text != original[rel]:
            try:
                compile(text, rel, "exec")
            except SyntaxError as exc:
                where = f"line {exc.lineno}" + (f": {exc.text.strip()}" if exc.text else "")
                return f"{rel} does not compile after the change ({exc.msg}, {where}); fix the edit"
    if smoke and task.smoke:
        return _smoke(task, change, data_dir, sandbox_or_none(sandbox, network=task.network))
    return None


def _smoke(task: ResearchTask, change: Change, data_dir: Path | None, sandbox: Sandbox) -> str | None:
    scratch = Path(tempfile.mkdtemp(prefix="autosci-smoke-"))
    try:
        workspace = make_workspace(task, scratch / "ws")
        apply_diff(workspace, change.diff or "", task.editable)
        data = data_dir or task.default_data_dir()
        argv = format_command(task.smoke or (), python=sys.executable, seed=str(task.seeds[0] if task.seeds else 0),
                              data_dir=str(data))
        env = build_run_env(task, Slot(index=0, threads=1), run_id=f"smoke@{uuid.uuid4().hex[:8]}", data_dir=data)
        proc = sandbox.process(argv, workspace=workspace, env=env, readonly=[data], limits=limits_for(task.limits),
                               timeout=task.smoke_timeout, log_path=scratch / "smoke.log", max_log_bytes=1 << 20, grace_s=2.0)
        outcome = proc.run()
        if outcome.timed_out:
            return f"the smoke command ({' '.join(task.smoke or ())}) ran past {task.smoke_timeout:g} s"
        if outcome.returncode != 0:
            tail = (scratch / "smoke.log").read_text(errors="replace")[-800:]
            return f"the smoke command failed (exit {outcome.returncode}); its output ends:\n{tail}"
        return None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
