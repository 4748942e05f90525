"""Ablations of the lab on generated tasks: variants against the current defaults, paired per instance.

    .venv/bin/python -m bench.bench_ablation --instances 60 --budget 40 --jobs 2 \\
        --variant 'no-primary-first={"scientist": {"primary_first": false}}' \\
        --variant 'two-baseline-seeds={"settings": {"baseline_seeds": 2}}' [--write]

Each variant is the lab (as ``bench.bench_efficacy`` runs it: SearchScientist, 3 teams, 2 slots,
a synchronous executor, ``LabSettings.seed`` = instance) with ``settings`` overriding
``LabSettings`` arguments (``promotion`` as a dict of ``PromotionRule`` fields) and ``scientist``
overriding ``SearchScientist`` arguments; ``"system": "single"`` runs the single-agent baseline
instead (``--variant 'single={"system": "single"}'`` reads the single agent's regret over the
lab's, paired per instance; with ``scientist`` overrides too, a change to the scientist is
measured on both systems). Every variant runs on the same noisy instances as the defaults, so
each instance is its own control: generated instances differ in difficulty by orders of
magnitude, and an unpaired median over a few dozen of them cannot tell a real change from the
draw (on 24 instances, one variant looked 1.22 times worse at 40 experiments, and 1.09 on 60).

Figures per variant, against the defaults on the same instances: the geometric mean of the
ratio of true regrets (each floored at 0.001, the noise-free truth at the champion) after 10, 20
and 40 experiments, with the instances where the variant is lower; and the mean change in
experiments to target (regret ≤ 0.1; never reached counts as budget + 1). ``--write`` replaces
the ``ablation`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # worker processes share the cores (see bench_efficacy)

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from autosci_graph.errors import SettingsError
from autosci_graph.graphs.context import LabSettings
from autosci_graph.lab.promotion import PromotionRule
from autosci_graph.scientists.search import SearchScientist
from bench._report import markdown_table, write_section
from bench.bench_efficacy import TARGET_REGRET, experiments_to_target, run_graph, score
from bench.efficacy_tasks import make_instance

DEFAULTS = "defaults"
#: Regrets are floored here before ratios: below it the truth is within float noise of the optimum.
FLOOR = 1e-3


def checkpoints(budget: int) -> list[int]:
    """Where regrets are compared: after 10 and 20 experiments, and at the end of the budget."""
    return sorted({n for n in (10, 20) if n < budget} | {budget})


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``name={"settings": {...}, "scientist": {...}}`` → (name, overrides)."""
    name, sep, body = spec.partition("=")
    if not sep or not name.strip():
        raise SystemExit(f"--variant {spec!r}: write it as NAME='{{\"settings\": {{...}}, \"scientist\": {{...}}}}'")
    try:
        over = json.loads(body)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--variant {name}: its overrides are not JSON ({exc})") from None
    if not isinstance(over, dict):
        raise SystemExit(f"--variant {name}: its overrides are a JSON object, {{\"settings\": {{...}}, ...}} (got {body!r})")
    unknown = set(over) - {"settings", "scientist", "system"}
    if unknown:
        raise SystemExit(f"--variant {name}: only 'settings', 'scientist' and 'system' may be given (got {sorted(unknown)})")
    if _system(over) not in ("lab", "single"):
        raise SystemExit(f"--variant {name}: 'system' is 'lab' or 'single' (got {over['system']!r})")
    try:  # a misspelt setting fails here, with its name, not in a worker process
        _settings(over)
        SearchScientist(**over.get("scientist", {}))
    except (TypeError, ValueError, SettingsError) as exc:
        raise SystemExit(f"--variant {name}: {exc}") from None
    return name.strip(), over


def _system(over: dict[str, Any]) -> str:
    """Which system a variant runs: the lab unless it says ``"system": "single"``."""
    return over.get("system", "lab")  # type: ignore[no-any-return]


def _settings(over: dict[str, Any]) -> dict[str, Any]:
    """The variant's ``LabSettings`` overrides, ``promotion`` as a ``PromotionRule``; checked."""
    settings = dict(over.get("settings", {}))
    if isinstance(settings.get("promotion"), dict):
        settings["promotion"] = PromotionRule(**settings["promotion"])
    LabSettings(**settings)
    return settings


def run_job(job: tuple[str, dict[str, Any], int, int]) -> dict[str, Any]:
    """One lab run of a variant on one noisy instance (top level, for worker processes)."""
    name, over, seed, budget = job
    warnings.filterwarnings("ignore", module="sklearn")
    inst = make_instance(seed, "noisy")
    system = _system(over)
    trace = run_graph(system, inst, budget, settings=_settings(over), scientist=over.get("scientist"))
    row = score(inst, system, trace, budget)
    return {"variant": name, "instance": seed, "regret_path": row["regret_path"], "to_target": row["to_target"], "budget": budget}


def _at(row: dict[str, Any], n: int) -> float:
    path = row["regret_path"]
    return max(FLOOR, path[min(n, len(path)) - 1])


def compare(rows: list[dict[str, Any]], name: str, budget: int) -> dict[str, Any]:
    """The variant ``name`` against the defaults, paired by instance."""
    base = {r["instance"]: r for r in rows if r["variant"] == DEFAULTS}
    mine = {r["instance"]: r for r in rows if r["variant"] == name}
    seeds = sorted(set(base) & set(mine))
    out: dict[str, Any] = {"instances": len(seeds)}
    for n in checkpoints(budget):
        logs = [math.log(_at(mine[s], n) / _at(base[s], n)) for s in seeds]
        out[f"ratio@{n}"] = math.exp(statistics.fmean(logs))
        out[f"lower@{n}"] = sum(1 for x in logs if x < 0)
    out["to_target_change"] = statistics.fmean(experiments_to_target(mine[s]) - experiments_to_target(base[s]) for s in seeds)
    out["median_regret"] = statistics.median(_at(mine[s], budget) for s in seeds)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=60)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--variant", action="append", default=[], help="NAME='{\"settings\": {...}, \"scientist\": {...}}'")
    ap.add_argument("--write", action="store_true", help="replace the ablation section of BENCHMARKS.md")
    args = ap.parse_args(argv)
    variants: list[tuple[str, dict[str, Any]]] = [(DEFAULTS, {})] + [parse_variant(v) for v in args.variant]
    if len(variants) == 1:
        raise SystemExit("give at least one --variant to compare with the defaults")
    jobs = [(name, over, seed, args.budget) for seed in range(args.instances) for name, over in variants]
    rows: list[dict[str, Any]] = []
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for fut in as_completed([pool.submit(run_job, j) for j in jobs]):
            rows.append(fut.result())
            print(f"[{time.perf_counter() - t:6.0f}s] {len(rows)}/{len(jobs)}", file=sys.stderr, flush=True)
    headers = ["variant", "overrides", "instances"] + [f"regret ratio @{n} (lower)" for n in checkpoints(args.budget)] \
        + ["experiments to target, mean change", f"median regret @{args.budget}"]
    table, figures = [], {}
    base_median = statistics.median(_at(r, args.budget) for r in rows if r["variant"] == DEFAULTS)
    table.append([DEFAULTS, "", args.instances] + ["1"] * len(checkpoints(args.budget)) + ["0", f"{base_median:.4f}"])
    for name, over in variants[1:]:
        c = compare(rows, name, args.budget)
        table.append([name, f"`{json.dumps(over)}`", c["instances"]]
                     + [f"{c[f'ratio@{n}']:.3f} ({c[f'lower@{n}']}/{c['instances']})" for n in checkpoints(args.budget)]
                     + [f"{c['to_target_change']:+.2f}", f"{c['median_regret']:.4f}"])
        figures[f"ablation {name}, regret ratio at {args.budget} vs defaults"] = round(c[f"ratio@{args.budget}"], 3)
    body = (f"{args.instances} generated noisy tasks (`bench/efficacy_tasks.py`, instances 0-{args.instances - 1}), "
            f"{args.budget} experiments each; the lab as the efficacy suite runs it (the single agent where a variant "
            "says `system: single`), with each variant's overrides. "
            "Paired per instance: the geometric mean over instances of the variant's true regret over the defaults' "
            f"(floored at {FLOOR}), below 1 is better, with the instances where the variant's is lower; experiments to "
            f"target (regret ≤ {TARGET_REGRET}; never = {args.budget + 1}), mean change, below 0 is better. "
            f"Wall {time.perf_counter() - t:.0f} s.\n\n" + markdown_table(headers, table))
    cmd = ".venv/bin/python -m bench.bench_ablation " + " ".join(
        [f"--instances {args.instances}", f"--budget {args.budget}", f"--jobs {args.jobs}"]
        + [f"--variant '{name}={json.dumps(over)}'" for name, over in variants[1:]] + ["--write"])
    if args.write:
        write_section("ablation", "Ablations of the lab on generated tasks", body, figures, cmd)
    else:
        print(body)
        for k, v in figures.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
