"""Every device busy: slot utilization with experimenters, approved work and refills, against
the design before them, in one run; orchestration overhead at 6 slots; checkpoint growth.

    .venv/bin/python -m bench.bench_slots [--experiments 60] [--only utilization|overhead|checkpoint]
        [--designs both|new]

* **utilization**: 6 slots, 3 teams x 2 experimenters, run durations spread three-fold (4-12 s,
  sleeps in an in-process executor), SearchScientist behind a scripted latency of 1-5 s per call
  (organize, propose, critique; drawn from the call's inputs, so both designs see the same
  distribution). The baseline is the design before experimenters (one run in flight per team,
  no approved work kept, no refill, spare slots idle): ``experimenters_per_team=1,
  refill_while_thinking=False, spare_slots_to_best_team=False``.
  Utilization is busy slot-seconds over slot-seconds while work remained: from the end of the
  baseline runs (before it no exploration can start: a candidate is judged against the
  baseline's mean) to the start of the budget's last experiment (after it nothing may start).
  The whole span, first start to last end, is listed too. ``--designs new`` runs only the
  current design (about 2 minutes instead of 10) and prints its figures without writing
  BENCHMARKS.md: for iterating on the design. The current design runs ``--repeats`` times (3;
  lab seeds 0, 1, ...), the median is the headline: how threads interleave changes the run, and
  the same seed measured 0.82 once and 0.98 another time.
* **overhead**: the lab's own time per experiment on 6 slots with no-op experiments and the
  scientist's thinking taken out.
* **checkpoint**: bytes of the SQLite checkpoint per experiment after 50 and 200 experiments.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Change
from autosci_graph.tools.inprocess import FunctionExecutor
from bench._report import markdown_table, write_section
from bench._scoring import CONFIG, invoke
from bench.efficacy_tasks import make_instance
from bench.synthetic import noisy_loss, synthetic_task

SLOTS, TEAMS, EXPERIMENTERS = 6, 3, 2


def _unit(*parts: object) -> float:
    """A number in [0, 1) drawn from ``parts``: the same inputs, the same draw."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:12], 16) / 16**12


class LatentScientist(SearchScientist):
    """SearchScientist whose every call takes 1-5 s, as a served model's would."""

    def __init__(self, low: float = 1.0, high: float = 5.0) -> None:
        super().__init__()
        self.low, self.high = low, high
        self.calls = 0
        self.seconds = 0.0

    def _wait(self, *parts: object) -> None:
        d = self.low + (self.high - self.low) * _unit(*parts)
        self.calls += 1
        self.seconds += d
        time.sleep(d)

    def organize(self, view: Any, **k: Any) -> Any:
        self._wait("organize", len(view.experiments), k.get("n_teams"))
        return super().organize(view, **k)

    def propose(self, view: Any, **k: Any) -> Any:
        self._wait("propose", len(view.experiments), k["team"].team_id, k["author"], len(view.feedback))
        return super().propose(view, **k)

    def critique(self, view: Any, **k: Any) -> Any:
        self._wait("critique", len(view.experiments), k["proposal"].proposal_id, k["reviewer"])
        return super().critique(view, **k)


def _work(change: Change, seed: int) -> float:
    time.sleep(4.0 + 8.0 * _unit("duration", sorted(change.knobs.items()), seed))  # 4-12 s: three-fold
    return noisy_loss(change, seed)


def _busy_in(log: list[dict[str, Any]], lo: float, hi: float) -> float:
    return sum(max(0.0, min(d["result"]["ended_at"], hi) - max(d["result"]["started_at"], lo)) for d in log)


def utilization_run(settings: LabSettings, n: int) -> dict[str, Any]:
    sci = LatentScientist()
    ex = FunctionExecutor(_work, metric_name="loss", slots=SLOTS)
    ctx = LabContext(task=synthetic_task(), executor=ex, scientist=sci, poll_s=0.05, settings=settings)
    t = time.time()
    try:
        out = invoke("lab", ctx, "slots")
    finally:
        ex.close()
    wall = time.time() - t
    log = out["log"]
    starts = [d["result"]["started_at"] for d in log]
    ends = [d["result"]["ended_at"] for d in log]
    base_end = max(d["result"]["ended_at"] for d in log if d["kind"] == "baseline")
    last_start = max(starts)
    window = _busy_in(log, base_end, last_start) / (SLOTS * (last_start - base_end))
    span = sum(e - s for s, e in zip(starts, ends)) / (SLOTS * (max(ends) - min(starts)))
    refilled = sum(1 for ev in out.get("events", []) if ev.get("type") == "slot_refilled")
    return {"experiments": len(log), "window": window, "span": span, "wall": wall, "calls": sci.calls,
            "refilled": refilled, "model_s": sci.seconds}


def utilization(n: int, designs_run: str = "both", repeats: int = 3) -> None:
    """The current design ``repeats`` times (lab seeds 0, 1, ...: threads interleave differently
    each run, and the same seed measured 0.82 on one run and 0.98 on another), the design
    before once (it is far below, and three times slower); the headline is the median."""
    common = dict(n_teams=TEAMS, max_experiments=n, stop_after_no_keep=None)
    before_name, new_name = "before: 1 run per team, no approved work", "experimenters, approved work, refills"
    runs: list[tuple[str, int, LabSettings]] = [
        (new_name, seed, LabSettings(**common, seed=seed, experimenters_per_team=EXPERIMENTERS))  # type: ignore[arg-type]
        for seed in range(repeats)]
    if designs_run == "both":
        runs.insert(0, (before_name, 0, LabSettings(**common, seed=0, experimenters_per_team=1,  # type: ignore[arg-type]
                                                    refill_while_thinking=False, spare_slots_to_best_team=False)))
    rows, results = [], {}
    for name, seed, settings in runs:
        r = utilization_run(settings, n)
        results[(name, seed)] = r
        rows.append([name, seed, r["experiments"], round(r["window"], 3), round(r["span"], 3), round(r["wall"], 1), r["calls"],
                     r["refilled"]])
        print(*rows[-1], sep=" | ", flush=True)
    headers = ["design", "lab seed", "experiments", "utilization while work remained", "utilization, whole span", "wall (s)",
               "model calls", "slots refilled from approved work"]
    if designs_run == "new":
        print(markdown_table(headers, rows))  # the section compares both designs: not written
        return
    before = results[(before_name, 0)]
    current = [results[(new_name, seed)] for seed in range(repeats)]
    windows = [r["window"] for r in current]
    body = (f"{n} experiments on {SLOTS} slots, {TEAMS} teams; run durations 4-12 s (sleeps in an in-process executor, "
            "drawn from the configuration and seed); SearchScientist behind a scripted latency of 1-5 s per call (drawn from "
            "the call's inputs). Utilization while work remained: busy slot-seconds over slot-seconds from the end of the "
            "baseline runs (before it no exploration can start) to the start of the budget's last experiment (after it nothing "
            "may start). Whole span: first start to last end (includes the baseline, when 3 of 6 slots run the default, and "
            "the drain after the last start). The design before: one run in flight per team, no approved work kept, spare "
            f"slots idle. The current design runs {repeats} times (lab seeds 0-{repeats - 1}): how the threads interleave "
            "changes every decision after the first results, so one run is one draw; the headline is the median.\n\n"
            + markdown_table(headers, rows))
    median_wall = statistics.median(r["wall"] for r in current)
    write_section("slot-utilization-6", "Slot utilization, 6 slots, 3 teams x 2 experimenters", body, {
        "slot utilization, 6 slots, 3 teams x 2": round(statistics.median(windows), 3),
        "slot utilization, 6 slots, 3 teams x 2, lowest run": round(min(windows), 3),
        "slot utilization, 6 slots, 3 teams x 2, design before": round(before["window"], 3),
        "slot utilization, 6 slots, 3 teams x 2, whole span": round(statistics.median(r["span"] for r in current), 3),
        "wall ratio, new/before design": round(median_wall / before["wall"], 3),
    }, f".venv/bin/python -m bench.bench_slots --only utilization --experiments {n} --repeats {repeats}")


def overhead(n: int) -> None:
    from bench.bench_lab import _TimedScientist

    sci = _TimedScientist()
    ex = FunctionExecutor(noisy_loss, metric_name="loss", slots=SLOTS)
    ctx = LabContext(task=synthetic_task(), executor=ex, scientist=sci, poll_s=0.01,
                     settings=LabSettings(n_teams=TEAMS, max_experiments=n, stop_after_no_keep=None))
    t = time.perf_counter()
    out = invoke("lab", ctx, "overhead")
    wall = time.perf_counter() - t
    ex.close()
    thinking = sci.thinking_wall()
    per = (wall - thinking) / len(out["log"]) * 1000
    body = (f"{len(out['log'])} no-op experiments (an in-process function) on {SLOTS} slots, {TEAMS} teams x {EXPERIMENTERS}, "
            "SearchScientist with its thinking time taken out, LangGraph's in-memory checkpointer. Branches think in "
            "parallel, so what is taken out is the wall time during which at least one scientist call ran (the union of "
            "the calls; their sum is listed too): the overhead is the wall time with no scientist call running, per "
            "experiment. Orchestration that runs while another branch thinks is not counted, so this is a lower bound.\n\n"
            + markdown_table(["experiments", "wall (s)", "scientist calls, summed (s)", "scientist calls, wall (s)",
                              "overhead per experiment (ms)"],
                             [[len(out["log"]), round(wall, 2), round(sci.seconds, 2), round(thinking, 2), round(per, 1)]]))
    write_section("orchestration-6", "Orchestration overhead at 6 slots", body,
                  {"orchestration overhead per experiment, 6 slots (ms)": round(per, 1)},
                  f".venv/bin/python -m bench.bench_slots --only overhead --experiments {n}")


def checkpoint_bytes(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "checkpoints.sqlite"
        conn = sqlite3.connect(db, check_same_thread=False)
        inst = make_instance(0)  # a generated task with nine knobs: moves to make for 200 experiments
        ex = FunctionExecutor(inst.experiment, metric_name="loss", slots=2, synchronous=True)
        ctx = LabContext(task=inst.task, executor=ex, scientist=SearchScientist(), poll_s=0.01,
                         # Idle rounds re-measure the champion instead of stopping: every run reaches n.
                         settings=LabSettings(n_teams=TEAMS, max_experiments=n, stop_after_no_keep=None,
                                              max_idle_rounds=10**6, max_champion_seeds=10**6))
        graph = build_lab_graph().compile(checkpointer=SqliteSaver(conn))
        out = graph.invoke({"run_id": "ckpt"}, context=ctx, config={**CONFIG, "configurable": {"thread_id": "ckpt"}})
        conn.commit()
        rows = conn.execute("select count(*), sum(length(checkpoint)) from checkpoints").fetchone()
        writes = conn.execute("select sum(length(value)) from writes").fetchone()[0] or 0
        conn.close()
        ex.close()
        return {"experiments": len(out["log"]), "bytes": db.stat().st_size, "checkpoints": rows[0],
                "checkpoint_blobs": rows[1] or 0, "writes": writes}


#: The same measurement on the design before (commit BEFORE_COMMIT: every list channel stored
#: whole at each step, and every Send carrying a copy of the lab state), run once from that commit.
BEFORE_COMMIT = "d3c9018"
BEFORE = {50: (14_036_992, 99), 200: (376_291_328, 584)}  # experiments: (file bytes, checkpoints)


def checkpoint(sizes: tuple[int, ...] = (50, 200)) -> None:
    results = {k: checkpoint_bytes(k) for k in sizes}
    rows = [[r["experiments"], r["checkpoints"], r["bytes"], round(r["bytes"] / r["experiments"]), round(r["bytes"] / r["checkpoints"])]
            for r in results.values()]
    rows += [[f"{k} (before, {BEFORE_COMMIT})", c, size, round(size / k), round(size / c)] for k, (size, c) in BEFORE.items()]
    a, b = (results[k] for k in sizes)
    growth = (b["bytes"] / b["experiments"]) / (a["bytes"] / a["experiments"])
    body = ("The SQLite checkpoint file of a lab run (generated efficacy instance 0, nine knobs, in-process, SearchScientist, "
            "3 teams, 2 slots; idle rounds re-measure the champion rather than stop) after "
            f"{sizes[0]} and {sizes[1]} experiments. Bytes per experiment that stay flat mean linear growth; growing "
            f"{sizes[1] // sizes[0]}x with {sizes[1] // sizes[0]}x the experiments would mean quadratic. Steps per "
            "experiment rise late in a run (idle rounds re-measure the champion), so bytes per checkpoint (one per graph step) "
            "is the size measure that is flat when growth is linear. The design before stored every list channel whole at "
            "each step and a copy of the lab state in every Send; now the growing lists are LangGraph delta channels "
            "(a step stores what it added) and branches read the state as their input.\n\n"
            + markdown_table(["experiments", "checkpoints", "file bytes", "bytes per experiment", "bytes per checkpoint"], rows))
    write_section("checkpoint-size", "Checkpoint size per experiment", body, {
        f"checkpoint bytes per experiment at {a['experiments']}": round(a["bytes"] / a["experiments"]),
        f"checkpoint bytes per experiment at {b['experiments']}": round(b["bytes"] / b["experiments"]),
        f"checkpoint bytes per experiment, growth {sizes[0]} to {sizes[1]}": round(growth, 2),
        f"checkpoint bytes per step, growth {sizes[0]} to {sizes[1]}": round((b["bytes"] / b["checkpoints"]) / (a["bytes"] / a["checkpoints"]), 2),
        "checkpoint bytes per experiment at 200, before/now": round((BEFORE[200][0] / 200) / (b["bytes"] / b["experiments"]), 1),
    }, ".venv/bin/python -m bench.bench_slots --only checkpoint")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--experiments", type=int, default=60)
    ap.add_argument("--only", choices=["utilization", "overhead", "checkpoint"])
    ap.add_argument("--repeats", type=int, default=3, help="utilization: runs of the current design (median reported)")
    ap.add_argument("--designs", choices=["both", "new"], default="both",
                    help="utilization: both designs (writes BENCHMARKS.md) or only the current one (prints it)")
    args = ap.parse_args()
    if args.only in (None, "utilization"):
        utilization(args.experiments, args.designs, args.repeats)
    if args.only in (None, "overhead"):
        overhead(args.experiments)
    if args.only in (None, "checkpoint"):
        checkpoint()


if __name__ == "__main__":
    main()
