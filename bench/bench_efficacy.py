"""Efficacy over generated tasks: the lab, the single agent and Optuna's TPE at one budget.

    .venv/bin/python -m bench.bench_efficacy --instances 30 --budget 40 --noise-runs 100 [--noise-baselines 10]
        [--deterministic 10] [--jobs 2] [--dry-run] [--out PATH]

Every instance is a task the lab was never tuned to (``bench.efficacy_tasks``: random optimum,
random importances with irrelevant knobs, an interaction, a divergence cliff, heteroscedastic
noise). Per instance, three systems get the same budget of experiments (baseline runs included):

* **lab**: ``build_lab_graph()``, SearchScientist, 3 teams, 2 slots, a synchronous executor and
  ``LabSettings.seed`` = instance seed, so a run is repeatable;
* **single**: ``build_single_agent_graph()``, the same scientist (autoresearch's loop);
* **optuna**: a TPE study (seed = instance seed) over the same knobs, ask/tell; trial 0 is the
  task default (every system starts from it), trial ``n`` runs on task seed ``n % len(seeds)``; the
  champion is the configuration with the best mean over its observed runs; diverged trials are
  told as failures.

Scores come from the champion after each experiment and the instance's noise-free truth; see
``score``. Writes the ``efficacy`` section of BENCHMARKS.md and ``bench/results/efficacy.json``.
Instance seeds: ``noisy`` 0..N-1, ``deterministic`` 0..K-1 (the same tasks without noise),
``pure_noise`` 1000.. (one instance per lab run; the single agent and Optuna run the first
``--noise-baselines`` of them: their false-promotion rate needs few runs to read). Jobs are single
runs, spread over ``--jobs`` worker processes.
"""

from __future__ import annotations

import os

# Runs are spread over worker processes; a BLAS thread pool in each as well oversubscribes the
# cores (the scientist's surrogate fits ran 5x slower on 2 cores). Set before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import logging
import math
import random
import statistics
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Change, ExperimentEntry
from autosci_graph.task import CategoricalKnob, FloatKnob, KnobValue
from autosci_graph.tools.inprocess import FunctionExecutor
from bench._report import machine_description, markdown_table, write_section
from bench._scoring import champion_path, config_key, false_promotions, invoke, past_abandon_bar, redundant_explorations
from bench.efficacy_tasks import NOISE_FRACTION, Instance, Variant, make_instance, random_config

RESULTS = Path(__file__).resolve().parent / "results" / "efficacy.json"
SYSTEMS = ("lab", "single", "optuna")
#: Experiments to target: the first experiment after which the champion's true regret is at most this.
TARGET_REGRET = 0.1
PURE_NOISE_SEED0 = 1000


@dataclass
class Trace:
    """What a system did: the champion after each experiment, and the lab's records if any."""

    champions: list[dict[str, KnobValue]]
    configs: list[Change]  # every experiment's full configuration, in order
    log: list[ExperimentEntry] | None = None
    events: list[dict[str, Any]] | None = None
    stop_reason: str | None = None
    final_champion: dict[str, KnobValue] | None = None


def run_graph(mode: str, inst: Instance, budget: int, settings: dict[str, Any] | None = None,
              scientist: dict[str, Any] | None = None) -> Trace:
    """The lab (``mode="lab"``) or the single agent on one instance; ``settings`` and
    ``scientist``: overrides of the ``LabSettings`` and ``SearchScientist`` arguments (ablations)."""
    ex = FunctionExecutor(inst.experiment, metric_name="loss", slots=2 if mode == "lab" else 1, synchronous=True)
    base = {"seed": inst.seed, "n_teams": 3, "max_experiments": budget, "stop_after_no_keep": None}
    ctx = LabContext(task=inst.task, executor=ex, scientist=SearchScientist(**(scientist or {})), poll_s=0.01,
                     settings=LabSettings(**{**base, **(settings or {})}))
    try:
        out = invoke(mode, ctx, f"{mode}-{inst.variant}-{inst.seed}")
    finally:
        ex.close()
    log = [ExperimentEntry.model_validate(d) for d in out["log"]]
    return Trace(champions=champion_path(log, inst.task.default_config()), configs=[e.result.change for e in log], log=log,
                 events=list(out.get("events", [])), stop_reason=out.get("stop_reason"),
                 final_champion=(out.get("champion") or {}).get("config"))


def run_optuna(inst: Instance, budget: int) -> Trace:
    """A TPE study at the same budget; its champion is the best mean over observed runs."""
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists: dict[str, BaseDistribution] = {}
    for name, k in inst.task.knobs.items():
        if isinstance(k, CategoricalKnob):
            dists[name] = CategoricalDistribution(k.choices)
        elif isinstance(k, FloatKnob):
            dists[name] = FloatDistribution(k.low, k.high, log=k.log)
        else:
            dists[name] = IntDistribution(k.low, k.high, log=k.log)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=inst.seed))
    study.enqueue_trial(inst.task.default_config())
    seeds = inst.task.seeds
    runs: dict[str, list[float]] = {}
    config_of: dict[str, dict[str, KnobValue]] = {}
    champion = inst.task.default_config()
    champions, configs = [], []
    for _ in range(budget):
        trial = study.ask(dists)
        change = Change(knobs=dict(trial.params))
        y = inst.experiment(change, seeds[trial.number % len(seeds)])
        configs.append(change)
        if math.isfinite(y):
            study.tell(trial, y)
            key = config_key(change)
            runs.setdefault(key, []).append(y)
            config_of[key] = dict(change.knobs)
            means = {k: statistics.fmean(v) for k, v in runs.items()}
            current = config_key(Change(knobs=champion))
            champion = config_of[min(means, key=lambda k: (means[k], k != current))]  # a tie keeps the champion
        else:
            study.tell(trial, state=TrialState.FAIL)
        champions.append(dict(champion))
    return Trace(champions=champions, configs=configs)


def _clean(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 6)


def score(inst: Instance, system: str, trace: Trace, budget: int) -> dict[str, Any]:
    """One run's scores.

    * ``regret``: normalized true regret of the final champion, ``(true - optimum) / (default -
      optimum)``; ``None`` on pure noise, where default and optimum coincide;
    * ``to_target``: experiments until the champion's true regret first is at most
      ``TARGET_REGRET``; ``None`` if never (censored);
    * ``false_promotions``: champion changes that did not lower the true loss;
    * ``redundant``: explorations whose full configuration (knobs and diff) an earlier
      exploration already measured (Optuna: trials repeating an earlier trial);
    * ``past_bar``: explorations by a team with 3 or more consecutive discards since its last keep;
    * ``teams_formed``: ``team_formed`` events.
    """
    default = inst.task.default_config()
    regrets = [inst.regret(c) for c in trace.champions]
    to_target = next((i + 1 for i, r in enumerate(regrets) if r <= TARGET_REGRET), None)
    promotions, false = false_promotions(trace.champions, default, inst.true_loss)
    if trace.log is not None:
        redundant = len(redundant_explorations(trace.log))
        explorations = sum(1 for e in trace.log if e.kind == "explore")
        kinds = dict(Counter(e.kind for e in trace.log))
        outcomes = dict(Counter(f"{e.kind}/{e.outcome}" for e in trace.log))
        diverged = sum(1 for e in trace.log if e.result.status == "diverged")
        past_bar: int | None = len(past_abandon_bar(trace.log))
        past_bar_no_lead: int | None = len(past_abandon_bar(trace.log, lead_resets=False))
    else:
        keys = [config_key(c) for c in trace.configs]
        redundant = sum(1 for i, k in enumerate(keys) if k in keys[:i])
        explorations = len(keys) - 1  # trial 0 is the default, a baseline
        kinds = {"baseline": 1, "explore": explorations}
        outcomes = {}
        diverged = sum(1 for c in trace.configs if math.isnan(inst.true_loss(c.knobs)))
        past_bar = past_bar_no_lead = None
    events = trace.events or []
    consistent = None
    if trace.final_champion is not None and trace.champions:
        consistent = config_key(Change(knobs=trace.final_champion)) == config_key(Change(knobs=trace.champions[-1]))
    return {
        "instance": inst.seed, "variant": inst.variant, "system": system, "knobs": len(inst.task.knobs),
        "irrelevant": len(inst.irrelevant), "experiments": len(trace.champions), "budget": budget,
        "regret": _clean(regrets[-1]) if regrets else None, "to_target": to_target,
        "promotions": promotions, "false_promotions": false, "redundant": redundant, "explorations": explorations,
        "past_bar": past_bar, "past_bar_no_lead": past_bar_no_lead, "teams_formed": sum(1 for ev in events if ev.get("type") == "team_formed") if trace.log is not None and system == "lab" else None,
        "regroups": sum(1 for ev in events if ev.get("type") == "regroup") if system == "lab" else None,
        "kinds": kinds, "outcomes": outcomes, "diverged": diverged, "stop_reason": trace.stop_reason,
        "champion_consistent": consistent, "regret_path": [_clean(r) for r in regrets],
    }


def random_reference(inst: Instance, budget: int, draws: int = 1000) -> dict[str, float | None]:
    """How hard the instance is for blind search, from the truth: the fraction of uniformly random
    configurations better than the default, and the median (over blocks of ``budget`` draws) of
    the best true regret a block contains: random search with a noise-free oracle picking."""
    if inst.variant == "pure_noise":
        return {"random_beats_default": None, "random_best_regret": None}
    rng = random.Random(f"reference-{inst.seed}")
    regrets = [inst.regret(random_config(inst, rng)) for _ in range(draws)]
    blocks = [[r for r in regrets[i:i + budget] if not math.isnan(r)] for i in range(0, draws - budget + 1, budget)]
    return {"random_beats_default": round(sum(1 for r in regrets if r < 1) / draws, 4),
            "random_best_regret": round(statistics.median(min(b) for b in blocks if b), 6)}


#: One run: (instance seed, variant, system, budget).
Job = tuple[int, Variant, str, int]


def run_job(job: Job) -> dict[str, Any]:
    """One system on one instance (a top-level function, so worker processes can run it)."""
    seed, variant, system, budget = job
    warnings.filterwarnings("ignore", module="sklearn")  # the surrogate's convergence chatter
    inst = make_instance(seed, variant)
    t = time.perf_counter()
    trace = run_optuna(inst, budget) if system == "optuna" else run_graph(system, inst, budget)
    return {**score(inst, system, trace, budget), **random_reference(inst, budget), "wall_s": round(time.perf_counter() - t, 3)}


def run_all(jobs: list[Job], workers: int) -> list[dict[str, Any]]:
    """Every job, slowest kinds first so no long run is left for the end; progress on stderr."""
    order = {"deterministic": 0, "noisy": 1, "pure_noise": 2}
    jobs = sorted(jobs, key=lambda j: (j[2] != "lab", order[j[1]]))
    rows: list[dict[str, Any]] = []
    t = time.perf_counter()

    def progress(row: dict[str, Any]) -> None:
        rows.append(row)
        print(f"[{time.perf_counter() - t:6.0f}s] {len(rows)}/{len(jobs)} {row['variant']} {row['instance']} {row['system']}: "
              f"{row['wall_s']:.1f}s", file=sys.stderr, flush=True)

    if workers <= 1:
        for job in jobs:
            progress(run_job(job))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for fut in as_completed([pool.submit(run_job, job) for job in jobs]):
                progress(fut.result())
    return sorted(rows, key=lambda r: (order[r["variant"]], r["instance"], SYSTEMS.index(r["system"])))


# -- summary --------------------------------------------------------------------------------------

NAMES = {"lab": "lab", "single": "single agent", "optuna": "optuna"}


def _median(values: Iterable[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else float("nan")


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("inf") if a else float("nan")


def _pick(rows: list[dict[str, Any]], variant: str, system: str) -> list[dict[str, Any]]:
    return sorted((r for r in rows if r["variant"] == variant and r["system"] == system), key=lambda r: r["instance"])


def experiments_to_target(r: dict[str, Any]) -> int:
    """Censored runs (target never reached) count as budget + 1: a lower bound on the truth."""
    return r["to_target"] if r["to_target"] is not None else r["budget"] + 1


def _fmt_target(v: float, budget: int) -> str:
    return f">{budget}" if v > budget else f"{v:g}"


def system_summary(rows: list[dict[str, Any]], variant: str, system: str) -> dict[str, Any]:
    sub = _pick(rows, variant, system)
    n_exp = sum(r["experiments"] for r in sub) or 1
    kinds: Counter[str] = Counter()
    for r in sub:
        kinds.update(r["kinds"])
    past = [r["past_bar"] for r in sub if r["past_bar"] is not None]
    past_no_lead = [r["past_bar_no_lead"] for r in sub if r.get("past_bar_no_lead") is not None]
    teams = [r["teams_formed"] for r in sub if r["teams_formed"] is not None]
    return {
        "runs": len(sub),
        "median_regret": _median(r["regret"] for r in sub),
        "median_to_target": _median(experiments_to_target(r) for r in sub),
        "reached": sum(1 for r in sub if r["to_target"] is not None),
        "promotions": sum(r["promotions"] for r in sub),
        "false_promotions": sum(r["false_promotions"] for r in sub),
        "runs_with_promotion": sum(1 for r in sub if r["promotions"] > 0),
        "redundant": sum(r["redundant"] for r in sub), "redundant_fraction": sum(r["redundant"] for r in sub) / n_exp,
        "past_bar": sum(past) if past else None, "past_bar_fraction": sum(past) / n_exp if past else None,
        "past_bar_no_lead_fraction": sum(past_no_lead) / n_exp if past_no_lead else None,
        "teams_per_40": 40 * sum(teams) / n_exp if teams else None,
        "per_40": {k: 40 * v / n_exp for k, v in kinds.items()},
        "diverged_per_40": 40 * sum(r["diverged"] for r in sub) / n_exp,
        "experiments": n_exp,
        "stopped_early": sum(1 for r in sub if r["experiments"] < r["budget"]),
    }


def _opt(v: float | None, digits: int = 3) -> object:
    return "n/a" if v is None else round(v, digits)


def _reading(summ: dict[tuple[str, str], dict[str, Any]], variants: list[str]) -> list[str]:
    """Plain sentences from the summary: where each system's budget went and what it bought."""
    lines = []
    for v in (x for x in variants if x != "pure_noise"):
        lab, single, optuna = (summ[v, s] for s in SYSTEMS)
        p = lab["per_40"]
        lines.append(
            f"- {v}: median final regret lab {lab['median_regret']:.3g}, single agent {single['median_regret']:.3g}, Optuna "
            f"{optuna['median_regret']:.3g}. Per 40 experiments the lab ran {p.get('explore', 0):.1f} explorations, "
            f"{p.get('confirm', 0):.1f} confirmations, {p.get('noise', 0):.1f} champion repeats and {p.get('baseline', 0):.1f} "
            f"baseline runs, and formed {lab['teams_per_40'] or 0:.1f} teams; the single agent ran "
            f"{single['per_40'].get('explore', 0):.1f} explorations. False promotions: lab {lab['false_promotions']}/"
            f"{lab['promotions']}, single agent {single['false_promotions']}/{single['promotions']}, Optuna "
            f"{optuna['false_promotions']}/{optuna['promotions']} champion changes.")
    if "pure_noise" in variants:
        lab, single, optuna = (summ["pure_noise", s] for s in SYSTEMS)
        lines.append(
            f"- pure noise: a champion change in {lab['runs_with_promotion']}/{lab['runs']} lab runs, "
            f"{single['runs_with_promotion']}/{single['runs']} single-agent runs and {optuna['runs_with_promotion']}/"
            f"{optuna['runs']} Optuna runs (Optuna's best-mean champion follows the luckiest configuration).")
    return lines


def report(rows: list[dict[str, Any]], budget: int, wall_s: float) -> tuple[str, dict[str, Any]]:
    """The section's body (tables) and its headline figures."""
    variants = [v for v in ("noisy", "deterministic", "pure_noise") if any(r["variant"] == v for r in rows)]
    summ = {(v, s): system_summary(rows, v, s) for v in variants for s in SYSTEMS}
    table = []
    for v in variants:
        for s in SYSTEMS:
            m = summ[v, s]
            regret = "n/a" if v == "pure_noise" else round(m["median_regret"], 3)
            target = "n/a" if v == "pure_noise" else _fmt_target(m["median_to_target"], budget)
            reached = "n/a" if v == "pure_noise" else f"{m['reached']}/{m['runs']}"
            table.append([v, NAMES[s], m["runs"], regret, target, reached, f"{m['false_promotions']}/{m['promotions']}",
                          f"{m['runs_with_promotion']}/{m['runs']}", f"{m['redundant']} ({m['redundant_fraction']:.1%})",
                          "n/a" if m["past_bar"] is None else f"{m['past_bar']} ({m['past_bar_fraction']:.1%})",
                          _opt(m["teams_per_40"], 1)])
    budget_rows = []
    for v in variants:
        for s in ("lab", "single"):
            p = summ[v, s]["per_40"]
            budget_rows.append([v, NAMES[s], *(round(p.get(k, 0.0), 1) for k in ("baseline", "explore", "confirm", "noise")),
                                round(summ[v, s]["diverged_per_40"], 1), f"{summ[v, s]['stopped_early']}/{summ[v, s]['runs']}"])
    per_instance = []
    lab, single, optuna = (_pick(rows, "noisy", s) for s in SYSTEMS)
    for a, b, c in zip(lab, single, optuna):
        per_instance.append([a["instance"], f"{a['knobs']} ({a['irrelevant']})", a["regret"], b["regret"], c["regret"],
                             _fmt_target(experiments_to_target(a), budget), _fmt_target(experiments_to_target(b), budget), _fmt_target(experiments_to_target(c), budget),
                             f"{a['false_promotions']}/{a['promotions']}", f"{b['false_promotions']}/{b['promotions']}",
                             a["redundant"], a["past_bar"], a["teams_formed"], a["kinds"].get("confirm", 0)])

    figures: dict[str, Any] = {}
    if "noisy" in variants:
        nl, ns, no = summ["noisy", "lab"], summ["noisy", "single"], summ["noisy", "optuna"]
        figures["lab/single regret ratio"] = _ratio(nl["median_regret"], ns["median_regret"])
        figures["lab/optuna regret ratio"] = _ratio(nl["median_regret"], no["median_regret"])
        figures["lab/single experiments-to-target ratio"] = _ratio(nl["median_to_target"], ns["median_to_target"])
    if "pure_noise" in variants:
        pl = summ["pure_noise", "lab"]
        figures["false promotions per run on pure noise"] = round(pl["false_promotions"] / max(1, pl["runs"]), 3)
    if "noisy" in variants:
        figures["redundant experiments (exact repeats), lab"] = round(nl["redundant_fraction"], 3)
        figures["experiments past a team's abandon bar, lab"] = round(nl["past_bar_fraction"] or 0.0, 3)
        figures["experiments past a team's abandon bar, lab, a lead counted as no verdict"] = round(
            nl["past_bar_no_lead_fraction"] or 0.0, 3)
        figures["teams formed per 40 experiments, lab"] = round(nl["teams_per_40"] or 0.0, 2)
        for s in SYSTEMS:
            figures[f"median regret, {NAMES[s]}"] = round(summ["noisy", s]["median_regret"], 4)
        for s in SYSTEMS:
            figures[f"median experiments to target, {NAMES[s]}"] = _fmt_target(summ["noisy", s]["median_to_target"], budget)
        wins_s = sum(1 for a, b in zip(lab, single) if a["regret"] is not None and b["regret"] is not None and a["regret"] < b["regret"])
        wins_o = sum(1 for a, c in zip(lab, optuna) if a["regret"] is not None and c["regret"] is not None and a["regret"] < c["regret"])
        figures["instances where the lab's final regret is lower than the single agent's"] = f"{wins_s}/{len(lab)}"
        figures["instances where the lab's final regret is lower than optuna's"] = f"{wins_o}/{len(lab)}"
        figures["random configurations better than the default (median over instances)"] = round(_median(r["random_beats_default"] for r in lab), 3)
        figures[f"best true regret among {budget} random configurations, noise-free oracle (median)"] = round(
            _median(r["random_best_regret"] for r in lab), 4)
    if "deterministic" in variants:
        dl, ds, do = (summ["deterministic", s] for s in SYSTEMS)
        figures["deterministic lab/single regret ratio"] = _ratio(dl["median_regret"], ds["median_regret"])
        figures["deterministic lab/optuna regret ratio"] = _ratio(dl["median_regret"], do["median_regret"])
        figures["deterministic lab/single experiments-to-target ratio"] = _ratio(dl["median_to_target"], ds["median_to_target"])
    if "pure_noise" in variants:
        figures["pure-noise runs with at least one promotion, lab"] = round(pl["runs_with_promotion"] / max(1, pl["runs"]), 3)
        for s in ("single", "optuna"):
            m = summ["pure_noise", s]
            figures[f"false promotions per run on pure noise, {NAMES[s]}"] = round(m["false_promotions"] / max(1, m["runs"]), 3)
    figures["wall time (s)"] = round(wall_s, 1)

    body = (
        f"Generated tasks (`bench/efficacy_tasks.py`), never hand-picked: 5-9 knobs of every kind, a random optimum 25-40% "
        f"of each (log) range from the default, random importances with 1-3 irrelevant knobs, one interacting pair, a "
        f"learning-rate cliff (diverges 2-6x above its optimum), noise σ = {NOISE_FRACTION:.0%} of the default-to-optimum gap "
        f"at the middle batch size (2x at the smallest, 0.5x at the largest). Variants: `noisy`, `deterministic` (σ = 0, the "
        f"same tasks), `pure_noise` (constant truth: every promotion is false; the single agent and Optuna run only the first "
        f"pure-noise instances). Each system gets {budget} experiments, "
        "baseline runs included: the lab (SearchScientist, 3 teams, 2 slots, synchronous executor, `LabSettings.seed` = "
        "instance), the single agent (same scientist, keep if better on its one seed), and an Optuna TPE study (trial 0 the "
        "default, trial n on seed n mod 6, champion = best mean over a configuration's runs, diverged trials failed).\n\n"
        "Scores use the noise-free truth of the champion after each experiment. Regret: (true(champion) - optimum) / "
        f"(default - optimum) at the end. Experiments to target: first experiment after which regret ≤ {TARGET_REGRET}; a run "
        f"that never gets there counts as {budget + 1} in medians (so '>{budget}' means more than half never did, and a ratio "
        "involving it is a bound). False promotions: champion changes that did not lower the true loss (shown as false/all). "
        "Redundant: explorations repeating a configuration (knobs and diff) an earlier exploration measured (Optuna: repeated "
        "trials). Past the abandon bar: explorations by a team that already had 3+ consecutive discards (discarded or crashed "
        "explorations, failed confirmations) since its last keep, where an exploration that became the lab's lead (kept as what "
        "every team builds on, its promotion still to come) counts as a keep; the figure with a lead counted as no verdict, "
        "the definition before the lab had a lead, is listed too. Fractions are of all experiments.\n\n"
        + markdown_table(["variant", "system", "runs", "median regret", "median experiments to target", "reached target",
                          "false/all promotions", "runs with a promotion", "redundant", "past abandon bar", "teams per 40"], table)
        + "\n\nWhere the budget went (mean experiments per 40):\n\n"
        + markdown_table(["variant", "system", "baseline", "explorations", "confirmations", "champion repeats", "diverged",
                          "runs stopped before the budget"], budget_rows)
        + "\n\nPer instance (noisy variant; knobs (irrelevant), final regret, experiments to target, promotions false/all, "
          "the lab's redundant explorations, explorations past the bar, teams formed and confirmation runs):\n\n"
        + markdown_table(["instance", "knobs", "regret lab", "regret single", "regret optuna", "to target lab", "to target single",
                          "to target optuna", "promotions lab", "promotions single", "redundant lab", "past bar lab", "teams lab",
                          "confirmations lab"], per_instance)
        + ("\n\nReading (computed from this run):\n\n" + "\n".join(_reading(summ, variants)) if "noisy" in variants else "")
        + "\n\nGoals (issue 9): lab/single regret ratio ≤ 0.5, lab/optuna < 1, lab/single experiments-to-target ratio ≤ 0.5, "
          "at most 5% of pure-noise lab runs with a promotion; redundant and past-bar experiments near zero. Raw per-run "
          "results, regret paths included: `bench/results/efficacy.json`."
    )
    return body, figures


def _code_version() -> str:
    """The commit measured, and whether the package had uncommitted changes at the time."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "autosci_graph"], cwd=root, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no git)"
    return f"commit {head or 'unknown'}" + (", with uncommitted changes in autosci_graph/" if dirty else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=30, help="noisy instances")
    ap.add_argument("--budget", type=int, default=40, help="experiments per system and run, baseline runs included")
    ap.add_argument("--noise-runs", type=int, default=100, help="pure-noise instances (one lab run each)")
    ap.add_argument("--noise-baselines", type=int, default=20, help="pure-noise instances the single agent and Optuna also run")
    ap.add_argument("--deterministic", type=int, default=10, help="deterministic instances (the first noisy ones, without noise)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the raw per-run results go (JSON)")
    ap.add_argument("--dry-run", action="store_true", help="print the section instead of writing it into BENCHMARKS.md")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    jobs: list[Job] = [(s, "noisy", system, args.budget) for s in range(args.instances) for system in SYSTEMS]
    jobs += [(s, "deterministic", system, args.budget) for s in range(args.deterministic) for system in SYSTEMS]
    jobs += [(PURE_NOISE_SEED0 + i, "pure_noise", system, args.budget) for i in range(args.noise_runs)
             for system in SYSTEMS if system == "lab" or i < args.noise_baselines]
    t = time.perf_counter()
    rows = run_all(jobs, args.jobs)
    wall = time.perf_counter() - t
    command = (f".venv/bin/python -m bench.bench_efficacy --instances {args.instances} --budget {args.budget} "
               f"--noise-runs {args.noise_runs} --noise-baselines {args.noise_baselines} --deterministic {args.deterministic} --jobs {args.jobs}")
    bad = [r for r in rows if r["champion_consistent"] is False]
    if bad:
        logging.warning("%d runs: the champion read from the log differs from the graph's final champion", len(bad))
    code = _code_version()
    body, figures = report(rows, args.budget, wall)
    body += f"\n\nCode measured: {code}."
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command, "machine": machine_description(), "code": code, "wall_s": round(wall, 1),
                                    "target_regret": TARGET_REGRET, "noise_fraction": NOISE_FRACTION, "rows": rows}, indent=1) + "\n")
    if args.dry_run:
        print(body + "\n\n" + "\n".join(f"{k}: {v}" for k, v in figures.items()))
        return
    write_section("efficacy", "Efficacy over generated tasks (lab vs single agent vs Optuna)", body, figures, command)

if __name__ == "__main__":
    main()
