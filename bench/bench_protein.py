"""The protein task family and the paper's transfer test: does a champion found on one assay
help on the others, unchanged?

    .venv/bin/python -m bench.bench_protein [--budget 10] [--seeds 3] [--source gb1]

For each assay (gb1, tdp43, abeta; ``examples/protein`` with the ``assay`` fixed argument):

* the default's held-out Spearman (``run_final_eval``: train on the training folds, score the test
  fold's positions, which neither training nor validation mutates) over ``--seeds`` seeds: mean ± σ;
* the lab (2 teams, 2 slots) and the single agent, each with the same offline SearchScientist and
  the same experiment budget, from the default; both champions scored held-out the same way;
* the transfer table: each assay's lab champion (knobs and code) scored, unchanged, on every
  assay's held-out fold, as a gain over that assay's default.

Headline: ``protein held-out gain, lab champion over default (median over assays)``, with the
median of the default's σ beside it (the goal is a gain beyond 2σ).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from autosci_graph.final_eval import run_final_eval
from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Change
from autosci_graph.task import ResearchTask, load_task
from autosci_graph.tools.local import LocalExecutor
from bench._report import markdown_table, write_section
from bench._scoring import invoke

ROOT = Path(__file__).resolve().parents[1]
ASSAYS = ("gb1", "tdp43", "abeta")
SYSTEMS = ("lab", "single")


def assay_task(assay: str) -> ResearchTask:
    return load_task(ROOT / "examples" / "protein").with_fixed(assay=assay)


def search(mode: str, task: ResearchTask, budget: int, tag: str) -> Change:
    """One lab (2 teams, 2 slots) or single-agent (1 slot) run from the default; its champion."""
    with tempfile.TemporaryDirectory() as work:
        ex = LocalExecutor(task, work, slots=2 if mode == "lab" else 1, keep_workspaces=False)
        ctx = LabContext(task=task, executor=ex, scientist=SearchScientist(), poll_s=0.5,
                         settings=LabSettings(n_teams=2, max_experiments=budget, stop_after_no_keep=None))
        try:
            out = invoke(mode, ctx, f"{tag}-{mode}")
        finally:
            ex.close()
    champion = out.get("champion") or {}
    defaults = task.default_config()
    knobs = {k: v for k, v in (champion.get("config") or {}).items() if defaults.get(k) != v}
    return Change(knobs=knobs, diff=champion.get("diff"), description=champion.get("description") or "")


def held_out(task: ResearchTask, change: Change, seeds: int, work: Path, validation: list[float] | None = None) -> list[float]:
    """The change's held-out test_spearman on seeds 0..seeds-1 (two evaluations at a time); the same
    runs' validation Spearman is appended to ``validation`` when given."""
    def one(seed: int) -> tuple[float, float]:
        r = run_final_eval(task, change, work_dir=work, seed=seed)
        assert r.ok and r.metric is not None, f"{task.fixed}: {r.error}\n{r.log_tail}"
        return float(r.metric), float(r.metrics["val_spearman"])

    with ThreadPoolExecutor(2) as pool:
        pairs = list(pool.map(one, range(seeds)))
    if validation is not None:
        validation.extend(v for _, v in pairs)
    return [t for t, _ in pairs]


def describe(change: Change) -> str:
    parts = [f"{k}={v}" for k, v in sorted(change.knobs.items())]
    if change.diff:
        parts.append("code: " + (change.description or "a diff")[:60])
    return ", ".join(parts) or "(default)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=16, help="experiments per search run (both systems)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per held-out score")
    p.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section")
    args = p.parse_args()
    started = time.time()
    tasks = {a: assay_task(a) for a in ASSAYS}
    work = Path(tempfile.mkdtemp(prefix="bench_protein-"))
    default_val: dict[str, list[float]] = {a: [] for a in ASSAYS}
    default = {a: held_out(t, Change(), args.seeds, work, default_val[a]) for a, t in tasks.items()}
    champions = {(a, s): search(s, t, args.budget, f"protein-{a}") for a, t in tasks.items() for s in SYSTEMS}
    scores = {(a, s): held_out(tasks[a], champions[(a, s)], args.seeds, work) for a in ASSAYS for s in SYSTEMS}
    # transfer: each assay's lab champion on the other assays (its own assay is scores[(a, "lab")])
    transfer = {(src, dst): (scores[(src, "lab")] if src == dst else held_out(tasks[dst], champions[(src, "lab")], args.seeds, work))
                for src in ASSAYS for dst in ASSAYS}

    mean, sd = statistics.fmean, statistics.stdev
    rows = [[a, f"{mean(default_val[a]):.3f} ± {sd(default_val[a]):.3f}", f"{mean(default[a]):.3f} ± {sd(default[a]):.3f}",
             f"{mean(scores[(a, 'lab')]):.3f}", describe(champions[(a, 'lab')]),
             f"{mean(scores[(a, 'single')]):.3f}", describe(champions[(a, 'single')]),
             f"{mean(scores[(a, 'lab')]) - mean(default[a]):+.3f}"] for a in ASSAYS]
    table = markdown_table(["assay", "default validation (± σ)", "default held-out (± σ)", "lab", "lab champion", "single agent",
                            "single-agent champion", "lab gain"], rows)
    trows = [[f"lab champion of {src}"] + [f"{mean(transfer[(src, dst)]) - mean(default[dst]):+.3f}" for dst in ASSAYS]
             for src in ASSAYS]
    ttable = markdown_table(["held-out gain over the default on →"] + list(ASSAYS), trows)
    gains = [mean(scores[(a, "lab")]) - mean(default[a]) for a in ASSAYS]
    sigma = statistics.median(sd(default[a]) for a in ASSAYS)
    body = (
        f"Held-out test_spearman (modulo position folds: the test fold's positions are mutated in neither "
        f"training nor validation), mean over seeds 0..{args.seeds - 1}; σ is the seed-to-seed standard "
        f"deviation of the default; its validation Spearman (what both systems optimize) is from the same runs. Both systems: offline SearchScientist, {args.budget} experiments each, "
        f"from the default, on that assay's validation Spearman.\n\n{table}\n\n"
        f"Transfer (the paper's test): each assay's lab champion applied unchanged (knobs and code) to every "
        f"assay's held-out fold; gain over that assay's default (the diagonal is the champion at home).\n\n{ttable}"
    )
    transfer_gains = [mean(transfer[(s, d)]) - mean(default[d]) for s in ASSAYS for d in ASSAYS if s != d]
    figures: dict[str, Any] = {
        "protein held-out gain, lab champion over default (median over assays)": round(statistics.median(gains), 4),
        "protein default held-out σ over seeds (median over assays)": round(sigma, 4),
        "protein held-out gain, single-agent champion over default (median over assays)":
            round(statistics.median(mean(scores[(a, "single")]) - mean(default[a]) for a in ASSAYS), 4),
        "protein transfer gain, lab champion on the other assays (median of 6)": round(statistics.median(transfer_gains), 4),
        "protein bench wall-clock seconds": round(time.time() - started, 1),
    }
    command = f".venv/bin/python -m bench.bench_protein --budget {args.budget} --seeds {args.seeds} --write"
    if args.write:
        write_section("protein", "Protein: three assays, held-out Spearman and the transfer test", body, figures, command)
    else:
        print(body)
        print("\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
