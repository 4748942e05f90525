"""Held-out final evaluation: score the champion on data no experiment ever saw.

A task may declare a final evaluation in ``task.toml``::

    [final_eval]
    command = ["{python}", "final_eval.py", "--seed={seed}"]
    files = ["final_eval.py"]      # never copied into an experiment workspace
    metric = "test_spearman"       # read from the command's `---` summary block

Only the harness runs it, on the champion, with ``AUTOSCI_FINAL_DIR`` pointing at the held-out
data (experiments never get that variable, and the files in ``files`` never enter their
workspaces). Before anything runs, :func:`verify_final_eval` checks that nothing was changed:

* the evaluation files (``files``) against the sha256 hashes the harness recorded the first time
  it ran this task's final evaluation (kept in the final-data folder, ``RECORD``);
* the prepared data (held-out and training) against ``manifest.json``, which the task's
  ``prepare`` command writes into ``AUTOSCI_FINAL_DIR``::

      {"final": {"test.npz": "<sha256>"}, "data": {"train.npz": "<sha256>", ...}}

  (paths relative to ``AUTOSCI_FINAL_DIR`` and ``AUTOSCI_DATA_DIR``).

Any difference raises :class:`FinalEvalTamperedError` naming the file. The evaluation itself runs
in a fresh folder built from the task folder with the champion's change applied (its diff, and
its knobs as ``--key=value``), like an experiment, so the champion is retrained exactly as it was
measured. A crash or timeout of the champion is a result (``status``), not an exception.

Example::

    task = load_task("examples/protein")
    result = run_final_eval(task, Change(knobs={"arch": "local"}), work_dir=Path("runs/protein"))
    result.metric   # held-out Spearman of the champion
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path, PurePosixPath

from pydantic import Field

from autosci_graph._hashing import sha256_file
from autosci_graph.errors import AutosciError, ErrorCode, TaskError
from autosci_graph.state import Change, Record, RunStatus
from autosci_graph.task import ResearchTask
from autosci_graph.tools.classify import classify, log_tail
from autosci_graph.tools.command import build_command, format_command
from autosci_graph.tools.diffs import DiffError
from autosci_graph.tools.env import build_run_env
from autosci_graph.tools.metrics import parse_metrics
from autosci_graph.tools.prepare import ensure_prepared
from autosci_graph.tools.limits import limits_for
from autosci_graph.tools.sandbox import Sandbox, package_path, sandbox_or_none
from autosci_graph.tools.slots import Slot, plan_slots
from autosci_graph.tools.workspace import apply_diff, make_workspace

log = logging.getLogger(__name__)

#: Written by the task's ``prepare`` into ``AUTOSCI_FINAL_DIR``: sha256 of every prepared file.
MANIFEST = "manifest.json"
#: Written by the harness into ``AUTOSCI_FINAL_DIR`` on the first final evaluation of a task:
#: sha256 of each file in ``[final_eval] files``.
RECORD = ".autosci_final_eval_files.json"
MAX_LOG_BYTES = 16 * 1024 * 1024


class FinalEvalTamperedError(AutosciError):
    """A final-evaluation file or a prepared data file differs from its recorded hash."""

    code = ErrorCode.FINAL_EVAL_TAMPERED


class FinalEvalResult(Record):
    """The held-out score of one champion (a failed evaluation is a status, not an exception)."""

    task: str
    status: RunStatus
    metric_name: str
    #: The held-out metric; None unless ``status == "ok"``.
    metric: float | None = None
    #: Everything the evaluation's summary block reported (e.g. the validation metric too).
    metrics: dict[str, float] = Field(default_factory=dict)
    change: Change
    seed: int
    command: list[str]
    eval_dir: str
    log_path: str
    log_tail: str = ""
    error: str | None = None
    duration_s: float = 0.0
    #: sha256 of every file checked before the evaluation ran, by ``final:``/``data:``/``eval:`` path.
    verified: dict[str, str] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.metric is not None


def _refuse(task: ResearchTask, what: str, fix: str) -> FinalEvalTamperedError:
    return FinalEvalTamperedError(f"task {task.name}: {what}; refusing to run the final evaluation. {fix}")


def _inside(base: Path, rel: str) -> Path:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise TaskError(f"final evaluation path {rel!r} must be relative and inside its folder")
    return base / p


def _check_files(task: ResearchTask, folder: Path, record_path: Path, *, record_new: bool) -> dict[str, str]:
    """Compare ``[final_eval] files`` in ``folder`` with the record; add unrecorded files when
    ``record_new`` (first use), else refuse them."""
    assert task.final_eval is not None
    try:
        record: dict[str, str] = json.loads(record_path.read_text(encoding="utf-8")) if record_path.exists() else {}
    except ValueError:
        raise _refuse(task, f"the hash record {record_path} is not valid JSON", f"Delete {record_path} to record the current files again.") from None
    checked: dict[str, str] = {}
    changed = False
    for rel in task.final_eval.files:
        path = _inside(folder, rel)
        if not path.is_file():
            raise _refuse(task, f"final-evaluation file {rel} is missing from {folder}", "Restore it from version control.")
        digest = sha256_file(path)
        if rel not in record:
            if not record_new:
                raise _refuse(task, f"final-evaluation file {rel} has no recorded hash", "Run verify_final_eval on the task folder first.")
            log.info("task %s: recording the hash of final-evaluation file %s (first use)", task.name, rel)
            record[rel], changed = digest, True
        elif record[rel] != digest:
            raise _refuse(
                task,
                f"final-evaluation file {rel} in {folder} has sha256 {digest[:12]}..., but {record[rel][:12]}... was recorded",
                f"Restore the file; if you changed it on purpose, delete {record_path} to record it again.",
            )
        checked[f"eval:{rel}"] = digest
    if changed:
        tmp = record_path.with_name(record_path.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(record_path)
    return checked


def verify_final_eval(task: ResearchTask, *, data_dir: Path, final_dir: Path) -> dict[str, str]:
    """Check the final-evaluation files and the prepared data; return what was checked.

    The first call for a task records the hashes of its ``[final_eval] files`` (trust on first
    use); later calls compare against that record. Data files are compared with the task's
    ``manifest.json``. Raises :class:`FinalEvalTamperedError` naming the first file that
    differs or is missing.
    """
    if task.final_eval is None:
        raise TaskError(f"task {task.name} declares no [final_eval] in its task.toml")
    final_dir.mkdir(parents=True, exist_ok=True)
    checked = _check_files(task, task.root, final_dir / RECORD, record_new=True)
    manifest_path = final_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _refuse(
            task,
            f"no {MANIFEST} in {final_dir}",
            f"The task's prepare command must write {MANIFEST} there with the sha256 of every prepared file "
            '({"final": {"test.npz": "<sha256>"}, "data": {"train.npz": "<sha256>"}}); delete '
            f"{data_dir / '.autosci_prepared.json'} to prepare again.",
        ) from None
    except ValueError:
        raise _refuse(task, f"{manifest_path} is not valid JSON", "Prepare the data again.") from None
    if not isinstance(manifest, dict) or not manifest.get("final"):
        raise _refuse(task, f"{manifest_path} lists no held-out ('final') files", "Prepare the data again.")
    for section, base in (("final", final_dir), ("data", data_dir)):
        for rel, expected in (manifest.get(section) or {}).items():
            path = _inside(base, rel)
            if not path.is_file():
                raise _refuse(task, f"{section} file {path} listed in {manifest_path} is missing", "Prepare the data again.")
            digest = sha256_file(path)
            if digest != expected:
                raise _refuse(
                    task,
                    f"{section} file {path} has sha256 {digest[:12]}..., but the manifest says {str(expected)[:12]}...",
                    f"Prepare the data again (delete {final_dir} and {data_dir}).",
                )
            checked[f"{section}:{rel}"] = digest
    return checked


def build_eval_dir(task: ResearchTask, change: Change, dest: Path) -> Path:
    """A fresh copy of the task folder, final-evaluation files included, with the change's diff
    applied (only to the task's editable files). Raises :class:`AutosciError` if it does not apply."""
    skip = [dest.parent] if dest.parent.resolve().is_relative_to(task.root.resolve()) else []
    make_workspace(task.model_copy(update={"final_eval": None}), dest, skip=skip)
    if change.diff and change.diff.strip():
        try:
            apply_diff(dest, change.diff, task.editable)
        except DiffError as exc:
            raise AutosciError(f"task {task.name}: the champion's diff does not apply: {exc}", code=ErrorCode.INVALID_CHANGE) from None
    return dest


def run_final_eval(
    task: ResearchTask,
    change: Change,
    *,
    work_dir: Path,
    seed: int = 0,
    final_dir: Path | None = None,
    data_dir: Path | None = None,
    timeout: float | None = None,
    slot: Slot | None = None,
    sandbox: Sandbox | None = None,
) -> FinalEvalResult:
    """Retrain the champion ``change`` and score it on the task's held-out data.

    Args:
        work_dir: where the evaluation folder and its log go (``<work_dir>/final_eval/<id>/``).
        final_dir, data_dir: the prepared data (default: the task's cache folders); the data is
            prepared first if needed.
        timeout: seconds before the evaluation is killed (default: twice the task's timeout,
            since it trains and then predicts).
        slot: the device to use (default: the first GPU, else one CPU thread).
        sandbox: how to contain the retrained champion (default: bubblewrap when it works here);
            it sees the data, the held-out data and the ``autosci_graph`` package, read-only.

    Raises :class:`FinalEvalTamperedError` if a final-evaluation or data file was changed, and
    :class:`AutosciError` if the change is invalid. A crashing champion gives ``status != "ok"``.
    """
    if task.final_eval is None:
        raise TaskError(f"task {task.name} declares no [final_eval] in its task.toml")
    try:
        knobs = task.validate_overrides(change.knobs)
    except ValueError as exc:
        raise AutosciError(f"task {task.name}: the champion's knobs are invalid: {exc}", code=ErrorCode.INVALID_CHANGE) from None
    final = Path(final_dir or task.default_final_dir()).expanduser().resolve()
    data = ensure_prepared(task, data_dir, final)
    verified = verify_final_eval(task, data_dir=data, final_dir=final)

    run_id = f"final-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    out_dir = Path(work_dir).expanduser().resolve() / "final_eval" / run_id
    out_dir.mkdir(parents=True)
    eval_dir = build_eval_dir(task, change, out_dir / "workspace")
    # The copy is what runs: check it too, so neither the diff nor a race swapped a file.
    _check_files(task, eval_dir, final / RECORD, record_new=False)

    metric_name = task.final_eval.metric or task.metric.name
    argv = build_command(task.model_copy(update={"command": task.final_eval.command}), knobs, seed, data)
    argv = format_command(argv, final_dir=str(final))
    slot = slot or plan_slots(1)[0]
    env = build_run_env(task, slot, run_id=run_id, data_dir=data)
    env["AUTOSCI_FINAL_DIR"] = str(final)
    limit = timeout if timeout is not None else 2 * task.timeout
    log_path = out_dir / "final_eval.log"
    log.info("task %s: final evaluation %s: %s", task.name, run_id, " ".join(argv))
    box = sandbox_or_none(sandbox, network=task.network)
    outcome = box.process(argv, workspace=eval_dir, env=env, readonly=[data, final, package_path()], gpu=slot.gpu is not None,
                          limits=limits_for(task.limits), timeout=limit, log_path=log_path, max_log_bytes=MAX_LOG_BYTES).run()
    output = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    parsed = parse_metrics(output, metric_name)
    status, error = classify(outcome, parsed, output, limit)
    result = FinalEvalResult(
        task=task.name,
        status=status,
        metric_name=metric_name,
        metric=parsed.value if status == "ok" else None,
        metrics=parsed.metrics,
        change=change,
        seed=seed,
        command=argv,
        eval_dir=str(eval_dir),
        log_path=str(log_path),
        log_tail=log_tail(output),
        error=error,
        duration_s=round(outcome.ended_at - outcome.started_at, 3),
        verified=verified,
    )
    (out_dir / "result.json").write_text(json.dumps(result.to_state(), indent=2), encoding="utf-8")
    return result


__all__ = [
    "FinalEvalResult",
    "FinalEvalTamperedError",
    "build_eval_dir",
    "run_final_eval",
    "verify_final_eval",
]
