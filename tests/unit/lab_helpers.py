"""Tiny shared helpers for the lab-logic tests: synthetic tasks, record builders, an in-process lab run.

Noise is derived from the seed and the configuration through SHA-256 (never Python's ``hash()``,
which is randomized per process), so every run of these tests sees the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.lab.knowledge import knowledge
from autosci_graph.scientists.base import Knowledge, LabView, Scientist
from autosci_graph.state import (
    Change,
    Champion,
    DeadEnd,
    ExperimentEntry,
    Hypothesis,
    Proposal,
    RunResult,
    Submission,
    Team,
)
from autosci_graph.task import CategoricalKnob, FloatKnob, IntKnob, Metric, ResearchTask
from autosci_graph.tools.inprocess import FunctionExecutor

# -- synthetic tasks ---------------------------------------------------------------------------

#: The known optimum of :func:`synth_loss` (loss there is 0 before noise).
OPTIMUM = {"lr": 1e-2, "width": 128, "dropout": 0.1, "act": "gelu"}


def stable_normal(*parts: object) -> float:
    """A standard normal draw determined by ``parts`` alone (stable across processes)."""
    payload = json.dumps([str(p) for p in parts], sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()
    return random.Random(int(digest[:16], 16)).gauss(0.0, 1.0)


def _knob_items(change: Change) -> str:
    return json.dumps({k: change.knobs[k] for k in sorted(change.knobs)}, default=str)


def make_synth_task(name: str = "synth", *, timeout: float = 5.0, target: float | None = None) -> ResearchTask:
    """Four knobs of every kind; the default configuration is far from :data:`OPTIMUM`."""
    return ResearchTask(
        name=name,
        root=Path("."),
        command=("python", "train.py"),
        metric=Metric(name="loss", direction="minimize", target=target),
        knobs={
            "lr": FloatKnob(low=1e-4, high=1.0, default=1e-3, log=True),
            "width": IntKnob(low=8, high=512, default=32, log=True),
            "dropout": FloatKnob(low=0.0, high=0.5, default=0.3),
            "act": CategoricalKnob(choices=("relu", "gelu", "tanh"), default="tanh"),
        },
        seeds=(0, 1, 2, 3),
        timeout=timeout,
    )


def synth_loss(sigma: float = 0.02):  # type: ignore[no-untyped-def]
    """``fn(change, seed)``: a smooth bowl around :data:`OPTIMUM` plus seeded Gaussian noise."""

    def fn(change: Change, seed: int) -> float:
        k = change.knobs
        value = (
            (math.log10(float(k["lr"])) + 2.0) ** 2
            + 0.125 * (math.log2(float(k["width"])) - 7.0) ** 2
            + 4.0 * (float(k["dropout"]) - 0.1) ** 2
            + {"relu": 0.1, "gelu": 0.0, "tanh": 0.3}[str(k["act"])]
        )
        return value + sigma * stable_normal("synth", seed, _knob_items(change))

    return fn


def true_loss(config: dict[str, Any]) -> float:
    """:func:`synth_loss` without the noise."""
    return synth_loss(0.0)(Change(knobs=config), 0)


def noise_fn(constant: float = 1.0, sigma: float = 0.05, salt: str = "noise"):  # type: ignore[no-untyped-def]
    """``fn(change, seed)``: a metric that is pure noise around ``constant``; no change matters."""

    def fn(change: Change, seed: int) -> float:
        return constant + sigma * stable_normal(salt, seed, _knob_items(change))

    return fn


# -- records -----------------------------------------------------------------------------------


def proposal(
    axis: str | None = "lr", direction: str | None = "increase", knobs: dict[str, Any] | None = None, *,
    author: str = "experimenter-1", team: str = "t1", pid: str = "p", what_is_different: str = "", bold: bool = False,
) -> Proposal:
    return Proposal(proposal_id=pid, author=author, team=team, axis=axis, direction=direction,  # type: ignore[arg-type]
                    change=Change(knobs=knobs if knobs is not None else {}), what_is_different=what_is_different,
                    bold=bold, rationale=f"{axis} {direction}")


def entry(
    index: int, axis: str | None = "lr", direction: str | None = "increase", knobs: dict[str, Any] | None = None, *,
    outcome: str = "discard", gain: float | None = -0.1, kind: str = "explore", metric: float | None = 1.0,
    seed: int = 0, status: str = "ok", full: dict[str, Any] | None = None, team: str = "t1", author: str = "experimenter-1",
) -> ExperimentEntry:
    """A log line. ``full`` is the full configuration run (defaults to ``knobs``)."""
    knobs = knobs if knobs is not None else {}
    result = RunResult(experiment_id=f"e{index}", status=status, change=Change(knobs=full if full is not None else knobs),  # type: ignore[arg-type]
                       seed=seed, metric_name="loss", metric=metric if status == "ok" else None)
    return ExperimentEntry(index=index, result=result, proposal=proposal(axis, direction, knobs, pid=f"p{index}", team=team, author=author),
                           outcome=outcome, gain=gain, kind=kind)  # type: ignore[arg-type]


def champion(task: ResearchTask, metric: float = 1.0, seeds: tuple[int, ...] = (0, 1), **overrides: Any) -> Champion:
    return Champion(experiment_id="champ" if overrides else None, config={**task.default_config(), **overrides},
                    metric=metric, seeds=list(seeds))


def team(team_id: str = "t1", axes: tuple[str, ...] = ("lr",), **counters: Any) -> Team:
    return Team(team_id=team_id, hypothesis=Hypothesis(statement=f"{axes[0]} is mis-set", prediction="beats the champion",
                                                       falsification="3 refutes", axes=list(axes)),
                members=["analyst-1", "experimenter-1", "experimenter-2"], **counters)


def view(
    task: ResearchTask, log: list[ExperimentEntry] | None = None, *, champ: Champion | None = None,
    dead_ends: list[DeadEnd] | None = None, in_flight: list[Proposal] | None = None, teams: list[Team] | None = None,
    know: Knowledge | None = None,
) -> LabView:
    log = log or []
    return LabView(task=task, champion=champ or champion(task), experiments=log, dead_ends=dead_ends or [],
                   in_flight=in_flight or [], teams=teams or [], knowledge=know or knowledge(task, log))


def dead_end(axis: str, value: Any, direction: str = "increase", eid: str = "e-dead") -> DeadEnd:
    return DeadEnd(experiment_id=eid, axis=axis, direction=direction, value=value, family=f"{axis}/{direction}", reason="lost")


def submission(exp_id: str, kind: str = "explore", *, team: str = "t1", seed: int = 0, knobs: dict[str, Any] | None = None) -> Submission:
    p = proposal("lr", "increase", knobs or {"lr": 0.002}, pid=exp_id, team=team)
    return Submission(experiment_id=exp_id, proposal=p, seed=seed, kind=kind, change=Change(knobs=knobs or {"lr": 0.002}))  # type: ignore[arg-type]


# -- an in-process lab run ---------------------------------------------------------------------


def run_lab(
    task: ResearchTask, fn: Any, scientist: Scientist, settings: LabSettings, *, slots: int = 1, run_id: str = "test",
    critic: Scientist | None = None, synchronous: bool = False,
) -> tuple[dict[str, Any], FunctionExecutor]:
    """Run the real lab graph to its end with a :class:`FunctionExecutor`; the final state and executor."""
    executor = FunctionExecutor(fn, metric_name=task.metric.name, slots=slots, synchronous=synchronous)
    ctx = LabContext(task=task, executor=executor, scientist=scientist, critic=critic, settings=settings, poll_s=1.0)
    graph = build_lab_graph().compile(checkpointer=InMemorySaver())
    try:
        final = graph.invoke({"run_id": run_id}, context=ctx,
                             config={"configurable": {"thread_id": run_id}, "recursion_limit": 10_000})
    finally:
        executor.close()
    return final, executor
