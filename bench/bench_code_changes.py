"""Code changes in a real offline lab run: ideas tried, kept and stacked, patches refused before compute.

    .venv/bin/python -m bench.bench_code_changes [--budget 24] [--steps 200] [--teams 3] [--slots 2]

Runs the real lab (SearchScientist, LocalExecutor, step-limited so every run repeats for its seed,
a fresh memory) on ``examples/gpt_bpb`` with its ``ideas/``, through the CLI, and reads the run's state:
which idea axes were tried and kept, whether a later accepted change stacked on an accepted idea
(its full change still carries the idea's lines), and how many code changes the check before
compute refused. Writes the ``code-changes`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autosci_graph.graphs.state import task_ideas
from autosci_graph.runner import load_state
from autosci_graph.task import load_task
from bench._report import ROOT, markdown_table, write_section

TASK = ROOT / "examples" / "gpt_bpb"


def _added_lines(diff: str) -> list[str]:
    return [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++") and ln[1:].strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=24)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--teams", type=int, default=3)
    ap.add_argument("--slots", type=int, default=2)
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-code-"))
    run_dir = scratch / "run"
    started = time.time()
    cmd = [sys.executable, "-m", "autosci_graph.cli", "run", str(TASK), "--teams", str(args.teams), "--slots", str(args.slots),
           "--max-experiments", str(args.budget), "--stop-after-no-keep", "0", "--memory-path", str(scratch / "memory"),
           "--run-dir", str(run_dir),
           "--fixed", "time_budget=0", "--fixed", f"max_steps={args.steps}"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.time() - started
    _, state = load_state(run_dir)
    ideas = {i.diff: i for i in task_ideas(load_task(TASK))}
    log, events = state["log"], state["events"]
    tried = [e for e in log if e["kind"] == "explore" and e["proposal"]["change"].get("diff") in ideas]
    promoted = {c["candidate_id"]: c for c in state["candidates"] if c["status"] == "promoted"}
    kept = [c for c in promoted.values() if c["proposal"]["change"].get("diff") in ideas]
    order = [ev["experiment_id"] for ev in events if ev["type"] == "promotion"]
    stacked = 0
    for c in kept:
        lines = _added_lines(c["proposal"]["change"]["diff"])
        later = order[order.index(c["candidate_id"]) + 1:] if c["candidate_id"] in order else []
        stacked += sum(1 for eid in later if all(ln in (promoted[eid]["change"].get("diff") or "") for ln in lines))
    refused = [ev for ev in events if ev["type"] == "patch_refused"]
    baseline = [e["result"]["metric"] for e in log if e["kind"] == "baseline" and e["result"]["metric"] is not None]
    rows = [[ideas[e["proposal"]["change"]["diff"]].name, e["proposal"]["axis"], e["outcome"], e["result"]["metric"],
             e["note"][:80].replace("|", "/")] for e in tried]
    body = (f"One offline lab run on `examples/gpt_bpb` with its {len(ideas)} shipped ideas ({args.teams} teams, "
            f"{args.slots} slots, {args.budget} experiments at {args.steps} steps, a fresh memory), {wall:.0f} s. "
            "Each idea is an axis `code:<axis>` owned by a team; the offline scientist ranks an untried idea by the "
            "surrogate's expected improvement against its best knob move. 'Stacked' counts later champions whose full "
            "change still carries a kept idea's lines.\n\n"
            + (markdown_table(["idea", "axis", "outcome", "val_bpb", "note"], rows) if rows else "No idea was tried.")
            + f"\n\nDefault val_bpb {sum(baseline) / max(1, len(baseline)):.4g}, champion {state['champion']['metric']:.4g}.")
    write_section("code-changes", "Code changes in an offline lab run (gpt_bpb ideas)", body, {
        "ideas tried": len(tried),
        "ideas kept": len(kept),
        "later champions stacked on a kept idea": stacked,
        "patches refused before compute": len(refused),
    }, "python -m bench.bench_code_changes " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
