"""Measure a task's shipped ideas: the default and each idea on the same seeds, then a table.

Every run goes through the project's executor (a private workspace copy, the idea's diff applied,
the task's prepared data), so a measurement is what a scientist would get. Use a step budget for
repeatable numbers; with a wall-clock budget the result depends on the machine's load.

    .venv/bin/python scripts/measure_ideas.py examples/gpt_bpb --steps=800 --seeds 0 1 2
    .venv/bin/python scripts/measure_ideas.py examples/protein --ideas ensemble --fixed assay=abeta --markdown

``--steps=N`` is shorthand for ``--fixed time_budget=0 --fixed max_steps=N`` (scripts that have
those constants, like gpt_bpb's). ``Δ/sd`` is the mean difference from the default in units of
the pooled seed-to-seed standard deviation of the two; the sign follows the metric (negative is
better when the metric is minimized).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autosci_graph.cli.experiment import parse_literal, parse_pairs
from autosci_graph.ideas import Idea, load_ideas
from autosci_graph.state import Change, RunRequest, RunResult
from autosci_graph.task import load_task
from autosci_graph.tools.local import LocalExecutor

DEFAULT = "(default)"


def _stats(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values) if values else math.nan
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return mean, sd


def summarize(results: dict[str, list[RunResult]], ideas: dict[str, Idea]) -> list[dict[str, object]]:
    """One row per configuration: mean, sd, difference from the default and failures."""
    base_mean, base_sd = _stats([r.metric for r in results[DEFAULT] if r.ok and r.metric is not None])
    rows = []
    for name, runs in results.items():
        values = [r.metric for r in runs if r.ok and r.metric is not None]
        mean, sd = _stats(values)
        pooled = math.sqrt((sd**2 + base_sd**2) / 2) if name != DEFAULT else math.nan
        delta = mean - base_mean if name != DEFAULT else math.nan
        rows.append({
            "idea": name,
            "axis": ideas[name].axis if name in ideas else "",
            "n": len(values),
            "mean": mean,
            "sd": sd,
            "delta": delta,
            "delta_sd": delta / pooled if pooled and math.isfinite(pooled) and pooled > 0 else math.nan,
            "failed": ", ".join(f"seed {r.seed}: {r.status}" for r in runs if not r.ok),
            "seconds": statistics.fmean(r.duration_s for r in runs) if runs else math.nan,
        })
    return rows


def _fmt(x: object, digits: int = 4, signed: bool = False) -> str:
    if not isinstance(x, float) or not math.isfinite(x):
        return "" if not isinstance(x, (int, str)) else str(x)
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def print_table(rows: list[dict[str, object]], metric: str, markdown: bool) -> None:
    header = ["idea", "axis", f"{metric} mean", "sd", "Δ mean", "Δ/sd", "n", "s/run", "failed"]
    cells = [[str(r["idea"]), str(r["axis"]), _fmt(r["mean"]), _fmt(r["sd"]), _fmt(r["delta"], signed=True),
              _fmt(r["delta_sd"], 1, signed=True), str(r["n"]), _fmt(r["seconds"], 1), str(r["failed"])] for r in rows]
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for c in cells:
            print("| " + " | ".join(c) + " |")
        return
    table = Table(*header)
    for c in cells:
        table.add_row(*c)
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", help="task folder (holding task.toml and ideas/)")
    p.add_argument("--steps", type=int, default=0, help="step-limited runs: time_budget=0 max_steps=N")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the task's)")
    p.add_argument("--ideas", nargs="+", default=None, help="only these ideas (default: all)")
    p.add_argument("--fixed", action="append", default=[], metavar="KEY=VALUE", help="override a fixed run argument (repeatable)")
    p.add_argument("--set", dest="knobs", action="append", default=[], metavar="KEY=VALUE", help="a knob value for every run (repeatable)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--slots", type=int, default=1, help="runs at once (1 keeps timings comparable)")
    p.add_argument("--work", default=None, help="keep experiment folders here (default: a temporary folder)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = p.parse_args(argv)

    task = load_task(args.task)
    fixed = {k: parse_literal(v) for k, v in parse_pairs(args.fixed, "--fixed").items()}
    if args.steps:
        fixed = {"time_budget": 0, "max_steps": args.steps, **fixed}
    if fixed:
        task = task.with_fixed(**fixed)
    knobs = task.validate_overrides({k: parse_literal(v) for k, v in parse_pairs(args.knobs, "--set").items()})
    ideas = {i.name: i for i in load_ideas(task.root, task.editable)}
    chosen = args.ideas if args.ideas is not None else list(ideas)
    unknown = [n for n in chosen if n not in ideas]
    if unknown:
        p.error(f"unknown idea(s) {', '.join(unknown)}; {task.root / 'ideas'} has: {', '.join(ideas) or 'none'}")
    seeds = args.seeds if args.seeds is not None else list(task.seeds)
    changes = {DEFAULT: Change(knobs=knobs)} | {n: Change(knobs=knobs, diff=ideas[n].diff, description=ideas[n].description) for n in chosen}

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        names = {f"{name.strip('()')}-s{seed}": name for name in changes for seed in seeds}
        requests = [RunRequest(experiment_id=eid, change=changes[name], seed=int(eid.rsplit("-s", 1)[1]))
                    for eid, name in names.items()]
        started = time.time()
        with LocalExecutor(task, work, slots=args.slots, device=args.device, keep_workspaces=False) as ex:
            done = ex.run_many(requests)
        results: dict[str, list[RunResult]] = {name: [] for name in changes}
        for res in done:
            results[names[res.experiment_id]].append(res)
    print_table(summarize(results, ideas), task.metric.name, args.markdown)
    print(f"\ntask {task.name}: {len(requests)} runs in {time.time() - started:.0f} s; fixed {task.fixed}; "
          f"knobs {knobs or 'defaults'}; seeds {seeds}; {args.slots} run(s) at once, one thread each")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
