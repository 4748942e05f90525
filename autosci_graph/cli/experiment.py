"""``autosci run-one`` and ``autosci reproduce``: one experiment from the command line.

    autosci run-one examples/gpt_bpb --set lr=0.003 --seed 1
    autosci run-one examples/gpt_bpb --fixed time_budget=0 --fixed max_steps=50
    autosci reproduce runs/run-one/experiments/<id>/result.json

``run-one`` prints the RunResult as JSON and exits 0 when the run is ``ok``, 1 otherwise.
``reproduce`` re-runs a recorded run (same task folder, change, seed and fixed arguments, taken
from its provenance) and prints the new result beside the old metric.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from autosci_graph.errors import AutosciError, ErrorCode, TaskError
from autosci_graph.state import Change, RunResult
from autosci_graph.task import KnobValue, ResearchTask, load_task

DEFAULT_WORK_DIR = Path("runs") / "run-one"


def add_sandbox_flag(parser: argparse.ArgumentParser) -> None:
    """``--sandbox {auto,bwrap,none}`` on a command that runs experiments."""
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "none"), default="auto",
                        help="contain each run: auto/bwrap (default) use bubblewrap (apt-get install bubblewrap): a read-only "
                             "system, its workspace and data, no network; none runs LLM-written code unsandboxed")


def register(subparsers: Any) -> None:
    """Add ``run-one`` and ``reproduce`` to the ``autosci`` parser."""
    p = subparsers.add_parser("run-one", help="run one experiment of a task and print its result as JSON")
    p.add_argument("task_dir", metavar="TASK_DIR", help="folder holding task.toml")
    p.add_argument("--set", dest="knobs", action="append", default=[], metavar="KNOB=VALUE", help="override a knob (repeatable)")
    p.add_argument("--patch", type=Path, metavar="FILE", help="unified diff of the task's editable files to apply")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the task's first seed)")
    p.add_argument("--fixed", action="append", default=[], metavar="KEY=VALUE", help="override a fixed run argument, e.g. time_budget=5 (repeatable)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help=f"where the experiment folder goes (default: {DEFAULT_WORK_DIR})")
    p.add_argument("--slot-threads", type=int, default=1, help="CPU threads for the run on a machine without GPU (default: 1)")
    add_sandbox_flag(p)
    p.set_defaults(handler=run_one)

    r = subparsers.add_parser("reproduce", help="re-run a recorded experiment from its result.json")
    r.add_argument("result_json", metavar="RESULT_JSON", type=Path, help="a result.json written by the executor or run-one")
    r.add_argument("--work-dir", type=Path, default=None, help="where the new experiment goes (default: beside the old one's work folder)")
    r.add_argument("--files", type=Path, default=None, metavar="DIR",
                   help="only rebuild the run's exact editable files (its code state) into DIR, without running")
    add_sandbox_flag(r)
    r.set_defaults(handler=reproduce)


def parse_pairs(items: list[str], flag: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a malformed item names the flag."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AutosciError(f"{flag} {item!r}: expected KEY=VALUE", code=ErrorCode.INVALID_CHANGE)
        out[key.strip()] = value.strip()
    return out


def parse_literal(text: str) -> KnobValue:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _execute(task: ResearchTask, change: Change, seed: int, work_dir: Path, threads: int = 1, sandbox: str = "auto") -> RunResult:
    # Imported here so `autosci --help` does not pay for the executor's imports.
    from autosci_graph.tools.local import LocalExecutor

    experiment_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    with LocalExecutor(task, work_dir, slots=1, threads_per_slot=threads, sandbox=sandbox) as executor:  # type: ignore[arg-type]
        return executor.run(change, seed=seed, experiment_id=experiment_id)


def run_one(args: argparse.Namespace) -> int:
    """Handler of ``autosci run-one``."""
    task = load_task(args.task_dir)
    fixed = {k: parse_literal(v) for k, v in parse_pairs(args.fixed, "--fixed").items()}
    if fixed:
        task = task.with_fixed(**fixed)
    try:
        knobs = task.validate_overrides(parse_pairs(args.knobs, "--set"))
    except ValueError as exc:
        raise AutosciError(f"--set: {exc}", code=ErrorCode.INVALID_CHANGE) from None
    diff = None
    if args.patch is not None:
        try:
            diff = args.patch.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AutosciError(f"--patch {args.patch}: cannot read it ({exc})", code=ErrorCode.INVALID_CHANGE) from None
    seed = args.seed if args.seed is not None else (task.seeds[0] if task.seeds else 0)
    change = Change(knobs=knobs, diff=diff, description="autosci run-one")
    result = _execute(task, change, seed, args.work_dir, args.slot_threads, args.sandbox)
    print(result.model_dump_json(indent=2))
    return 0 if result.ok else 1


def fixed_from_provenance(task: ResearchTask, result: RunResult) -> dict[str, KnobValue]:
    """The fixed arguments a recorded run had, read back from its exact command line.

    The command is ``task.command`` (placeholders filled), then ``--key=value`` for the fixed
    arguments, then for the change's knobs (see ``tools.command.build_command``).
    """
    assert result.provenance is not None
    command = result.provenance.command
    base = len(task.command)
    tail = command[base : len(command) - len(result.change.knobs)]
    fixed: dict[str, KnobValue] = {}
    for arg in tail:
        key, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep:
            raise TaskError(f"cannot read the fixed arguments from the recorded command {command}: the task's command changed since")
        fixed[key] = parse_literal(value)
    return fixed


def _rebuild_files(task: ResearchTask, old: RunResult, dest: Path) -> int:
    """Write the editable files exactly as the recorded run had them, and their content hash."""
    from autosci_graph.tools.codestate import files_at, state_hash
    from autosci_graph.tools.diffs import DiffError

    try:
        files = files_at(task, old.change.diff)
    except DiffError as exc:
        raise AutosciError(f"the recorded change no longer applies to {task.root}: {exc}; the task's files changed since the run") from None
    if dest.exists() and any(dest.iterdir()):
        raise AutosciError(f"--files {dest}: the folder is not empty; give a new or empty folder")
    for rel, text in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    print(json.dumps({"experiment_id": old.experiment_id, "commit": state_hash(task, old.change), "files": sorted(files),
                      "knobs": old.change.knobs, "dir": str(dest)}, indent=2))
    return 0


def reproduce(args: argparse.Namespace) -> int:
    """Handler of ``autosci reproduce``."""
    try:
        old = RunResult.model_validate_json(args.result_json.read_bytes())
    except OSError as exc:
        raise AutosciError(f"{args.result_json}: cannot read it ({exc})") from None
    except ValueError as exc:
        raise AutosciError(f"{args.result_json}: not a RunResult JSON ({str(exc).splitlines()[0]})") from None
    prov = old.provenance
    if prov is None or not prov.task_root:
        raise AutosciError(f"{args.result_json}: the result has no provenance (a bad_change run never ran); nothing to reproduce")
    task = load_task(prov.task_root)
    if args.files is not None:
        return _rebuild_files(task, old, args.files)
    fixed = fixed_from_provenance(task, old)
    if fixed:
        task = task.with_fixed(**fixed)
    work_dir = args.work_dir or args.result_json.resolve().parent.parent.parent / "reproductions"
    new = _execute(task, old.change, old.seed, work_dir, sandbox=args.sandbox)
    fp_new = new.provenance.env_fingerprint if new.provenance else {}
    drift = {k: [v, fp_new.get(k)] for k, v in prov.env_fingerprint.items() if fp_new.get(k) != v}
    same = old.metric is not None and new.metric is not None and math.isclose(old.metric, new.metric, rel_tol=0, abs_tol=1e-12)
    report = {
        "old": {"experiment_id": old.experiment_id, "status": old.status, "metric": old.metric},
        "new": json.loads(new.model_dump_json()),
        "metric_name": old.metric_name,
        "delta": (new.metric - old.metric) if (old.metric is not None and new.metric is not None) else None,
        "identical_metric": same,
        "environment_changes": drift,
    }
    print(json.dumps(report, indent=2))
    if drift:
        print(f"autosci: note: the environment differs from the recorded run: {sorted(drift)}", file=sys.stderr)
    return 0 if new.ok else 1
