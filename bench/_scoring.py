"""Running a lab or single-agent graph for a benchmark, and reading its log back.

Shared by ``bench_lab`` and ``bench_efficacy``. Everything here reads only the lab's public records
(``ExperimentEntry``: kind, outcome, result.change, proposal.team; ``events``), never its internals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from autosci_graph.graphs.context import LabContext
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.graphs.single_agent import build_single_agent_graph
from autosci_graph.state import Change, ExperimentEntry
from autosci_graph.task import KnobValue

CONFIG: RunnableConfig = {"recursion_limit": 100_000}
#: Consecutive discards since a team's last keep after which its further explorations are
#: "past the abandon bar" (the AutoScientists-v2 replay audit's measure).
ABANDON_BAR = 3


def invoke(mode: str, ctx: LabContext, run_id: str) -> dict[str, Any]:
    """Run the lab (``mode="lab"``) or the single agent to the end; the final graph state."""
    graph = (build_lab_graph() if mode == "lab" else build_single_agent_graph()).compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {**CONFIG, "configurable": {"thread_id": run_id}}
    out: dict[str, Any] = graph.invoke({"run_id": run_id}, context=ctx, config=config)
    return out


def champion_path(log: Sequence[ExperimentEntry], default: dict[str, Any]) -> list[dict[str, Any]]:
    """The champion configuration after each experiment (a keep of an exploration or of a
    confirmation replaces it with the configuration that ran)."""
    champ, path = dict(default), []
    for e in log:
        if e.outcome == "keep" and e.kind in ("explore", "confirm"):
            champ = dict(e.result.change.knobs)
        path.append(champ)
    return path


def config_key(change: Change) -> str:
    """An exact identity for a full configuration: knob values and diff (``64`` and ``64.0`` are
    the same value)."""
    def norm(v: KnobValue) -> str:
        return repr(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else repr(v)
    return json.dumps([sorted((k, norm(v)) for k, v in change.knobs.items()), (change.diff or "").strip()])


def redundant_explorations(log: Sequence[ExperimentEntry]) -> list[int]:
    """Log positions of explorations whose full configuration was already measured by an earlier
    exploration: exact repeats. Confirmations, champion repeats and baselines are intentional
    repeats and neither count nor make a later exploration count."""
    seen: set[str] = set()
    out = []
    for i, e in enumerate(log):
        if e.kind != "explore":
            continue
        key = config_key(e.result.change)
        if key in seen:
            out.append(i)
        seen.add(key)
    return out


def past_abandon_bar(log: Sequence[ExperimentEntry], bar: int = ABANDON_BAR, *, lead_resets: bool = True) -> list[int]:
    """Log positions of explorations run by a team that already had ``bar`` or more consecutive
    discards since its last keep.

    A team's verdicts, in log order: a kept exploration or confirmation resets its count; a
    discarded or crashed exploration, or a confirmation that ended discarded, adds one. An
    exploration that became the lab's lead (``pending_confirmation``: kept as the point every
    team builds on, as a single agent keeps its best run, with promotion still to come) was not
    discarded, so it resets the count too; ``lead_resets=False`` counts it as nothing (the
    definition before the lab had a lead, reported alongside)."""
    streak: dict[str, int] = {}
    out = []
    for i, e in enumerate(log):
        team = e.proposal.team
        if not team or e.kind not in ("explore", "confirm"):
            continue
        if e.kind == "explore" and streak.get(team, 0) >= bar:
            out.append(i)
        if e.outcome == "keep" or (lead_resets and e.kind == "explore" and e.outcome == "pending_confirmation"):
            streak[team] = 0
        elif e.outcome in ("discard", "crash"):
            streak[team] = streak.get(team, 0) + 1
    return out


def false_promotions(path: Sequence[dict[str, KnobValue]], start: dict[str, KnobValue],
                     truth: Callable[[dict[str, KnobValue]], float]) -> tuple[int, int]:
    """``(promotions, false promotions)`` along a champion path: a champion change whose true
    loss is not below the true loss of the champion it replaced is a false promotion."""
    promotions = false = 0
    for before, after in zip([start, *path], path):
        if after != before:
            promotions += 1
            false += not truth(after) < truth(before)
    return promotions, false
