"""The paper's comparison on the three example tasks: the lab against the single agent, from the
task's default and from a strong champion, with matched experiment budgets.

    .venv/bin/python -m bench.bench_suite [--seeds 3] [--budget 16] [--champ-seeds 2] [--champ-budget 12] [--scale 1]

For each task (gpt_bpb, protein, solubility) both systems get the same offline SearchScientist,
the same LocalExecutor runs (step-limited, so a run is repeatable) and the same experiment budget,
on several seeds. Round 2 starts both from a strong champion: the best final champion of round 1
(by its mean on fresh seeds), injected as the task's knob defaults. Afterwards the harness:

* re-runs every champion either system ever promoted on 2 fresh seeds (never used by any run): a
  promotion is *false* when the new champion's fresh mean is not better than the old one's;
* scores each final champion on the held-out data (``run_final_eval``).

Each task writes its section of BENCHMARKS.md (``suite-<task>``) and ``bench/plots/<task>.png``.
``--scale`` multiplies experiment budgets, training steps and timeouts for a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosci_graph.final_eval import run_final_eval
from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Change, ExperimentEntry, RunRequest
from autosci_graph.task import ResearchTask, load_task
from autosci_graph.tools.local import LocalExecutor
from bench._report import markdown_table, write_section
from bench._scoring import champion_path, invoke
from bench.bench_lab import _repeated_failures

ROOT = Path(__file__).resolve().parents[1]
PLOTS = Path(__file__).resolve().parent / "plots"
#: Seeds no benchmark run uses: champions are re-measured on these to judge promotions.
FRESH_SEEDS = (10_000, 10_001)
FINAL_SEED = 0
SYSTEMS = ("lab", "single")


@dataclass(frozen=True)
class Bench:
    """How one task runs in the suite: fixed arguments at scale 1 and how they grow with --scale."""

    fixed: dict[str, Any] = field(default_factory=dict)
    #: fixed argument -> (value at scale 1, cap) multiplied by --scale
    scaled: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: seconds before a run is killed at scale 1 (bounds the largest models the knobs allow)
    timeout: float = 60.0


SUITE: dict[str, Bench] = {
    # 100 steps: about 4 s for the default on one CPU thread, exactly repeatable per seed.
    "gpt_bpb": Bench(fixed={"time_budget": 0}, scaled={"max_steps": (100, 100_000)}),
    # 10k of the 59k training variants: about 3 s for the default.
    "protein": Bench(scaled={"max_train": (10_000, 59_093)}),
    # epochs is a knob, so the run length is the scientist's to choose; the default takes about 5 s.
    "solubility": Bench(),
}


def bench_task(name: str, scale: float) -> ResearchTask:
    b = SUITE[name]
    fixed = {**b.fixed, **{k: min(cap, int(round(v * scale))) for k, (v, cap) in b.scaled.items()}}
    task = load_task(ROOT / "examples" / name).with_fixed(**fixed)
    return task.model_copy(update={"timeout": b.timeout * max(1.0, scale)})


def with_defaults(task: ResearchTask, config: dict[str, Any]) -> ResearchTask:
    """A copy of the task whose knob defaults are ``config``: both systems start from it."""
    knobs = {k: knob.model_copy(update={"default": config.get(k, knob.default)}) for k, knob in task.knobs.items()}
    return task.model_copy(update={"knobs": knobs})


def key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def better(a: float, b: float, minimize: bool) -> bool:
    """a strictly better than b (nan is never better)."""
    return (a < b) if minimize else (a > b)


# -- running -----------------------------------------------------------------------------------


def run_system(mode: str, task: ResearchTask, seed: int, budget: int, tag: str) -> dict[str, Any]:
    """One lab (2 slots) or single-agent (1 slot) run; its log scored as the system measured it."""
    task_s = task.model_copy(update={"seeds": tuple(range(seed * 10, seed * 10 + 6))})
    with tempfile.TemporaryDirectory() as work:
        ex = LocalExecutor(task_s, work, slots=2 if mode == "lab" else 1, keep_workspaces=False)
        ctx = LabContext(task=task_s, executor=ex, scientist=SearchScientist(), poll_s=0.5,
                         settings=LabSettings(n_teams=2, max_experiments=budget, stop_after_no_keep=None))
        t = time.time()
        try:
            out = invoke(mode, ctx, f"{tag}-{mode}-{seed}")
        finally:
            ex.close()
        wall = time.time() - t
    log = [ExperimentEntry.model_validate(d) for d in out["log"]]
    final = (out.get("champion") or {}).get("metric")
    # The champion's measured metric after each experiment: the next entry's "before", then the end.
    path = [log[i + 1].champion_metric if i + 1 < len(log) else final for i in range(len(log))]
    path = [float("nan") if v is None else float(v) for v in path]
    configs = champion_path(log, task.default_config())
    chain = [task.default_config()] + [c for p, c in zip([task.default_config()] + configs, configs) if c != p]
    return {"system": mode, "seed": seed, "experiments": len(log), "path": path, "best": final,
            "chain": chain, "final_config": (out.get("champion") or {}).get("config") or chain[-1],
            "promotions": len(chain) - 1, "repeated_failures": _repeated_failures(log),
            "crashes": sum(1 for e in log if e.result.status != "ok"),
            "device_s": round(sum(e.result.ended_at - e.result.started_at for e in log), 1), "wall_s": round(wall, 1)}


def run_round(task: ResearchTask, seeds: int, budget: int, tag: str) -> list[dict[str, Any]]:
    """Both systems on each seed. The lab uses both cores; two single agents run side by side."""
    rows = [run_system("lab", task, s, budget, tag) for s in range(seeds)]
    with ThreadPoolExecutor(2) as pool:
        rows += list(pool.map(lambda s: run_system("single", task, s, budget, tag), range(seeds)))
    return rows


class Judge:
    """Fresh-seed means and held-out scores of configurations, each measured once per task."""

    def __init__(self, task: ResearchTask, work: Path) -> None:
        self.task, self.work = task, work
        self.fresh: dict[str, float] = {}
        self.held_out: dict[str, float | None] = {}
        self.device_s = 0.0

    def measure(self, configs: list[dict[str, Any]]) -> None:
        todo = list({key(c): c for c in configs if key(c) not in self.fresh}.values())
        if not todo:
            return
        reqs = [RunRequest(experiment_id=f"fresh-{len(self.fresh)}-{i}-{s}", change=Change(knobs=c), seed=s)
                for i, c in enumerate(todo) for s in FRESH_SEEDS]
        with LocalExecutor(self.task, self.work / f"fresh-{len(self.fresh)}", slots=2, keep_workspaces=False) as ex:
            results = ex.run_many(reqs)
        self.device_s += sum(r.ended_at - r.started_at for r in results)
        for i, c in enumerate(todo):
            vals = [r.metric for r in results[i * len(FRESH_SEEDS):(i + 1) * len(FRESH_SEEDS)]]
            ok = [v for v in vals if v is not None and math.isfinite(v)]
            self.fresh[key(c)] = statistics.fmean(ok) if len(ok) == len(vals) else float("nan")

    def final(self, configs: list[dict[str, Any]]) -> None:
        todo = list({key(c): c for c in configs if key(c) not in self.held_out}.values())

        def one(c: dict[str, Any]) -> float | None:
            r = run_final_eval(self.task, Change(knobs=c), work_dir=self.work, seed=FINAL_SEED)
            self.device_s += r.duration_s
            return r.metric if r.ok else None

        with ThreadPoolExecutor(2) as pool:
            for c, m in zip(todo, pool.map(one, todo)):
                self.held_out[key(c)] = m

    def judge(self, row: dict[str, Any]) -> None:
        minimize = self.task.metric.minimize
        means = [self.fresh[key(c)] for c in row["chain"]]
        row["false_promotions"] = sum(1 for a, b in zip(means, means[1:]) if not better(b, a, minimize))
        row["fresh"] = self.fresh[key(row["final_config"])] if key(row["final_config"]) in self.fresh else means[-1]
        row["held_out"] = self.held_out.get(key(row["final_config"]))


# -- reporting ---------------------------------------------------------------------------------


def to_target(path: list[float], target: float, minimize: bool) -> int | None:
    return next((i + 1 for i, v in enumerate(path) if math.isfinite(v) and not better(target, v, minimize)), None)


def med(values: list[Any]) -> float:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(statistics.median(vals)) if vals else float("nan")


def plot(name: str, rounds: dict[str, list[dict[str, Any]]], metric: str, default: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(rounds), figsize=(5.5 * len(rounds), 4), squeeze=False)
    for ax, (title, rows) in zip(axes[0], rounds.items()):
        for system, color in zip(SYSTEMS, ("tab:blue", "tab:orange")):
            paths = [r["path"] for r in rows if r["system"] == system]
            n = max(len(p) for p in paths)
            grid = np.array([p + [p[-1]] * (n - len(p)) for p in paths], dtype=float)
            x = np.arange(1, n + 1)
            label = "lab" if system == "lab" else "single agent"
            ax.plot(x, np.nanmedian(grid, axis=0), color=color, label=f"{label} (median of {len(paths)} seeds)")
            ax.fill_between(x, np.nanmin(grid, axis=0), np.nanmax(grid, axis=0), color=color, alpha=0.2)
        if title == "from default":
            ax.axhline(default, color="grey", ls=":", label="default config (fresh seeds)")
        ax.set(title=f"{name}: {title}", xlabel="experiments", ylabel=f"champion {metric} (as measured)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    out = PLOTS / f"{name}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _reading(name: str, rows: list[dict[str, Any]], minimize: bool, label: str) -> str:
    """Plain comparisons of the medians: which system did better on each measure."""
    def m(system: str, k: str) -> float:
        return med([r[k] for r in rows if r["system"] == system])

    parts = []
    for k, what in (("best", "best validation metric as each system measured it"),
                    ("fresh", "its champion re-run on 2 fresh seeds"), ("held_out", "held-out metric of the champion")):
        lab, single = m("lab", k), m("single", k)
        if math.isnan(lab) or math.isnan(single) or lab == single:
            verdict = "a tie"
        else:
            verdict = "the lab" if better(lab, single, minimize) else "the single agent"
        parts.append(f"{what}: {verdict} (median {lab:.4g} vs {single:.4g})")
    fp = {s: sum(r["false_promotions"] for r in rows if r["system"] == s) for s in SYSTEMS}
    pr = {s: sum(r["promotions"] for r in rows if r["system"] == s) for s in SYSTEMS}
    return (f"{label}: " + "; ".join(parts) + f"; accepted improvements {pr['lab']} (lab) vs {pr['single']} (single), "
            f"of which false on fresh seeds {fp['lab']} vs {fp['single']}.")


def report(name: str, task: ResearchTask, rounds: dict[str, list[dict[str, Any]]], judge: Judge,
           budgets: dict[str, int], command: str, wall_s: float) -> None:
    minimize = task.metric.minimize
    metric = task.metric.name
    default_cfg = rounds["from default"][0]["chain"][0]
    default_fresh, default_held = judge.fresh[key(default_cfg)], judge.held_out.get(key(default_cfg))
    figures: dict[str, Any] = {f"{name} default config {metric} (fresh seeds)": round(default_fresh, 4),
                               f"{name} default config held-out {task.final_eval.metric if task.final_eval else ''}":
                                   "n/a" if default_held is None else round(default_held, 4)}
    tables, readings = [], []
    for title, rows in rounds.items():
        # The same target for both: the weaker system's median final champion (as measured).
        meds = [med([r["best"] for r in rows if r["system"] == s]) for s in SYSTEMS]
        target = max(meds) if minimize else min(meds)
        for r in rows:
            r["to_target"] = to_target(r["path"], target, minimize)
        budget = budgets[title]
        tables.append(f"**{title}** (budget {budget} experiments per run; target {metric} = {target:.4g}, the weaker "
                      "system's median final champion)\n\n" + markdown_table(
            ["seed", "system", "experiments to target", f"best {metric} (measured)", "champion, 2 fresh seeds",
             "held-out", "accepted improvements", "false promotions", "repeated failures", "crashes", "device-s"],
            [[r["seed"], r["system"], r["to_target"] or f">{r['experiments']}", r["best"], r["fresh"],
              "n/a" if r["held_out"] is None else r["held_out"], r["promotions"], r["false_promotions"],
              r["repeated_failures"], r["crashes"], r["device_s"]] for r in rows]))
        short = "scratch" if title == "from default" else "champion"
        for s, label in (("lab", "lab"), ("single", "single agent")):
            mine = [r for r in rows if r["system"] == s]
            figures[f"{name} {short}: median experiments to target, {label}"] = med(
                [r["to_target"] or budget + 1 for r in mine])
            figures[f"{name} {short}: median best {metric}, {label}"] = round(med([r["best"] for r in mine]), 4)
            figures[f"{name} {short}: median fresh-seed {metric} of champion, {label}"] = round(med([r["fresh"] for r in mine]), 4)
            figures[f"{name} {short}: median held-out of champion, {label}"] = round(med([r["held_out"] for r in mine]), 4)
            figures[f"{name} {short}: accepted improvements, {label} (total)"] = sum(r["promotions"] for r in mine)
            figures[f"{name} {short}: false promotions, {label} (total)"] = sum(r["false_promotions"] for r in mine)
            figures[f"{name} {short}: device-seconds, {label} (total)"] = round(sum(r["device_s"] for r in mine), 1)
        readings.append(_reading(name, rows, minimize, title))
    lab_scratch = [r for r in rounds["from default"] if r["system"] == "lab"]
    improved = sum(1 for r in lab_scratch if better(r["fresh"], default_fresh, minimize))
    figures[f"{name} lab champions better than the default on fresh seeds"] = f"{improved}/{len(lab_scratch)}"
    figures[f"{name} lab improves on the default (median fresh-seed champion)"] = (
        "yes" if better(med([r["fresh"] for r in lab_scratch]), default_fresh, minimize) else "no")
    figures[f"{name} suite wall-clock seconds"] = round(wall_s, 1)
    png = plot(name, rounds, metric, default_fresh)
    direction = "lower" if minimize else "higher"
    body = (
        f"{task.description.split('.')[0]}. Metric {metric} ({direction} is better); fixed arguments "
        f"{task.fixed}, run timeout {task.timeout:.0f} s. Both systems: the offline SearchScientist, real "
        "LocalExecutor runs, the same experiment budget; the lab runs 2 teams on 2 slots, the single agent one "
        "trajectory on 1 slot (keep if strictly better on its one seed). 'From champion' starts both from the best "
        "round-1 champion (by its fresh-seed mean), injected as the task's knob defaults. *Best (measured)* is each "
        "system's own estimate of its champion (the lab: mean over its seeds; the single agent: one seed). Every "
        f"champion ever promoted is re-run on 2 fresh seeds {FRESH_SEEDS}; a *false promotion* is one whose new "
        "champion's fresh mean is not better than the old one's. *Held-out* is run_final_eval on the final champion "
        f"(seed {FINAL_SEED}). The default configuration, the sensible baseline: {metric} {default_fresh:.4g} on fresh "
        f"seeds, held-out {default_held if default_held is None else round(default_held, 4)}.\n\n"
        + "\n\n".join(tables) + f"\n\n![{name}: champion metric vs experiments](bench/plots/{png.name})\n\n"
        "Reading (generated from the medians above; seeds are few, so differences within the seed spread are not "
        "evidence): " + " ".join(readings))
    write_section(f"suite-{name}", f"Suite: {name}, lab vs single agent", body, figures, command)


def _figures(name: str) -> dict[str, str]:
    """The ``name: value`` headline lines of one suite section of BENCHMARKS.md."""
    from bench._report import BENCHMARKS

    text = BENCHMARKS.read_text(encoding="utf-8")
    section = re.search(rf"<!-- bench:suite-{name} -->(.*?)<!-- /bench:suite-{name} -->", text, re.S)
    if not section:
        return {}
    return dict(m.groups() for m in re.finditer(rf"^({re.escape(name)} [^\n|]*): (\S+)$", section.group(1), re.M))


def summarize(reading: str | None) -> None:
    """The suite's summary section, built from the per-task sections' headline figures (so it can
    be rewritten with a reading after a run without rerunning anything)."""
    rows, improved, figures = [], [], {}
    for name in SUITE:
        f = _figures(name)
        if not f:
            continue
        metric = {"gpt_bpb": "val_bpb", "protein": "val_spearman", "solubility": "val_rmse"}[name]
        get = lambda k: f.get(f"{name} {k}", "n/a")  # noqa: E731
        yes = get("lab improves on the default (median fresh-seed champion)")
        if yes == "yes":
            improved.append(name)
        rows.append([name, metric, get(f"default config {metric} (fresh seeds)"),
                     get(f"scratch: median fresh-seed {metric} of champion, lab"),
                     get(f"scratch: median fresh-seed {metric} of champion, single agent"),
                     get("scratch: median held-out of champion, lab"), get("scratch: median held-out of champion, single agent"),
                     f"{get('scratch: accepted improvements, lab (total)')} / {get('scratch: accepted improvements, single agent (total)')}",
                     f"{get('scratch: false promotions, lab (total)')} / {get('scratch: false promotions, single agent (total)')}",
                     f"{get('champion: accepted improvements, lab (total)')} / {get('champion: accepted improvements, single agent (total)')}",
                     f"{get('champion: false promotions, lab (total)')} / {get('champion: false promotions, single agent (total)')}",
                     yes, get("suite wall-clock seconds")])
    figures["tasks where the lab improves on the default configuration"] = f"{len(improved)}/{len(rows)} ({', '.join(improved) or 'none'})"
    body = ("One row per task from its section below (medians over seeds; champions re-measured on 2 fresh seeds). "
            "Improvements and false promotions are totals over seeds, lab / single agent.\n\n" + markdown_table(
        ["task", "metric", "default config", "lab champion", "single champion", "lab held-out", "single held-out",
         "improvements from default", "false promotions from default", "improvements from champion",
         "false promotions from champion", "lab beats default", "wall (s)"], rows)
        + ("\n\n" + reading.strip() if reading else ""))
    write_section("suite", "Suite: lab vs single agent on the example tasks", body, figures,
                  ".venv/bin/python -m bench.bench_suite (then --summarize)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(SUITE), choices=list(SUITE))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--champ-seeds", type=int, default=2)
    ap.add_argument("--champ-budget", type=int, default=12)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply budgets, training steps and timeouts (GPU)")
    ap.add_argument("--summarize", action="store_true", help="only rewrite the summary section from the task sections")
    ap.add_argument("--reading", type=Path, help="a text file with the reading of the results, for the summary")
    args = ap.parse_args()
    if args.summarize:
        summarize(args.reading.read_text(encoding="utf-8") if args.reading else None)
        return
    budget, champ_budget = max(3, round(args.budget * args.scale)), max(3, round(args.champ_budget * args.scale))
    command = (f".venv/bin/python -m bench.bench_suite --tasks {' '.join(args.tasks)} --seeds {args.seeds} "
               f"--budget {args.budget} --champ-seeds {args.champ_seeds} --champ-budget {args.champ_budget} --scale {args.scale:g}")
    t_suite = time.time()
    for name in args.tasks:
        t0 = time.time()
        task = bench_task(name, args.scale)
        with tempfile.TemporaryDirectory() as work:
            judge = Judge(task, Path(work))
            scratch = run_round(task, args.seeds, budget, f"{name}-scratch")
            judge.measure([c for r in scratch for c in r["chain"]] + [r["final_config"] for r in scratch])
            finals = [r["final_config"] for r in scratch]
            best = min(finals, key=lambda c: judge.fresh[key(c)] * (1 if task.metric.minimize else -1)
                       if math.isfinite(judge.fresh[key(c)]) else float("inf"))
            strong = with_defaults(task, best)
            champ = run_round(strong, args.champ_seeds, champ_budget, f"{name}-champion")
            judge.measure([c for r in champ for c in r["chain"]] + [r["final_config"] for r in champ])
            judge.final([task.default_config()] + [r["final_config"] for r in scratch + champ])
            for r in scratch + champ:
                judge.judge(r)
            report(name, task, {"from default": scratch, "from champion": champ}, judge,
                   {"from default": budget, "from champion": champ_budget}, command, time.time() - t0)
        print(f"{name}: {time.time() - t0:.0f} s (suite so far {time.time() - t_suite:.0f} s)", flush=True)
    summarize(args.reading.read_text(encoding="utf-8") if args.reading else None)


if __name__ == "__main__":
    main()
