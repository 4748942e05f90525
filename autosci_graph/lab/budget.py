"""Budgets and stopping. No budget is ever exceeded: an experiment starts only when the worst
case (its full time budget) still fits the device-seconds budget and the deadline.

The rules read plain numbers (:class:`Spent`) and records, never the graph state: the graph's
glue (:mod:`autosci_graph.graphs.budget`) reads them, so ``can_start``, which runs for every
dispatch and every confirmation, costs a few sums and no record parsing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autosci_graph.state import Champion, ExperimentEntry
from autosci_graph.task import ResearchTask

#: A team turn is a proposal and up to two critiques, each possibly repaired once.
CALLS_PER_TURN = 6


@dataclass(frozen=True)
class Budget:
    """The limits of a run (``None`` = unlimited). The lab builds one from its settings
    (``LabSettings.budget``), which document each field."""

    max_experiments: int | None
    max_device_seconds: float | None
    max_tokens: int | None
    max_cost_usd: float | None
    deadline: float | None
    stop_after_no_keep: int | None
    max_idle_rounds: int


@dataclass(frozen=True)
class Spent:
    """What a run has used so far, as counted from its state."""

    #: Experiments handed to the executor, finished or not.
    submitted: int
    #: Submitted experiments not yet logged.
    in_flight: int
    #: Device time of every finished experiment.
    device_seconds: float
    llm_calls: int
    llm_tokens: int
    cost_usd: float
    #: Rounds in a row in which no team got a proposal approved.
    idle_rounds: int
    #: Team turns begun (a turn's calls: its proposal, critiques, revisions and their repairs).
    llm_turns: int = 0


def experiments_left(budget: Budget, spent: Spent) -> int | None:
    limit = budget.max_experiments
    return None if limit is None else max(0, limit - spent.submitted)


def can_start(budget: Budget, spent: Spent, timeout: float, now: float, *,
              extra_submitted: int = 0, extra_in_flight: int = 0) -> bool:
    """Whether one more experiment of at most ``timeout`` seconds may start at ``now`` without any
    budget being exceeded; ``extra_*``: experiments this step already decided to start."""
    left = experiments_left(budget, spent)
    if left is not None and left - extra_submitted <= 0:
        return False
    if budget.max_device_seconds is not None:
        reserved = (spent.in_flight + extra_in_flight + 1) * timeout
        if spent.device_seconds + reserved > budget.max_device_seconds:
            return False
    if budget.deadline is not None and now + timeout > budget.deadline:
        return False
    return not llm_budget_spent(budget, spent)


def llm_turns_left(budget: Budget, spent: Spent) -> int | None:
    """How many more agent turns fit the token and cost budgets (``None``: no such budget, or
    nothing spent yet to estimate a turn from). A turn is estimated at ``CALLS_PER_TURN`` calls
    of the mean cost so far, so the count stays ahead of the spend; a round's parallel branches
    are each a turn, and together they must fit."""
    # The larger of CALLS_PER_TURN calls and the mean turn so far (formation included): turns
    # whose answers need repairs run to more calls than CALLS_PER_TURN.
    return _units_left(budget, spent, lambda used, calls, turns: max(used / calls * CALLS_PER_TURN,
                                                                      used / turns if turns else 0.0))


def llm_passes_left(budget: Budget, spent: Spent) -> int | None:
    """How many more proposal passes (a proposal and its critiques, repairs included: at most
    ``CALLS_PER_TURN`` calls) fit the token and cost budgets; a revision is one such pass."""
    return _units_left(budget, spent, lambda used, calls, turns: used / calls * CALLS_PER_TURN)


def _units_left(budget: Budget, spent: Spent, unit: Callable[[float, int, int], float]) -> int | None:
    """How many more units of spend, each priced by ``unit(used, calls, turns)``, fit every LLM budget."""
    calls, turns = max(1, spent.llm_calls), spent.llm_turns
    left: list[int] = []
    for limit, used in ((budget.max_tokens, float(spent.llm_tokens)), (budget.max_cost_usd, spent.cost_usd)):
        if limit is None:
            continue
        cost = unit(used, calls, turns)
        if cost > 0:
            # the tolerance keeps a unit that fits exactly (3.0 - 1.2 is 1.7999... in floats)
            left.append(max(0, math.floor((limit - used) / cost + 1e-9)))
        elif used > limit:
            left.append(0)
    return min(left) if left else None


def llm_budget_spent(budget: Budget, spent: Spent) -> bool:
    """Whether another agent turn could overrun the token or cost budget."""
    left = llm_turns_left(budget, spent)
    return left is not None and left < 1


def stop_reason(task: ResearchTask, budget: Budget, spent: Spent, champion: Champion, log: Sequence[ExperimentEntry],
                now: float) -> str | None:
    """Why the lab should stop starting experiments at ``now``, or ``None`` to go on."""
    if champion.metric is not None and math.isfinite(champion.metric) and task.metric.reached(champion.metric):
        return f"target reached: {task.metric.name} = {champion.metric:.5g}"
    left = experiments_left(budget, spent)
    if left == 0:
        return f"experiment budget spent ({budget.max_experiments})"
    if budget.stop_after_no_keep is not None:
        since_keep = 0
        # A keep reached by confirmation is logged on the confirmation run, not on the exploration.
        for e in reversed([e for e in log if e.kind in ("explore", "confirm")]):
            if e.outcome == "keep":
                break
            since_keep += e.kind == "explore"
        if since_keep >= budget.stop_after_no_keep:
            return f"no keep in the last {since_keep} explorations"
    if budget.max_device_seconds is not None and spent.device_seconds + task.timeout > budget.max_device_seconds:
        return f"device-seconds budget ({budget.max_device_seconds:g} s) cannot fit another experiment"
    if budget.deadline is not None and now + task.timeout > budget.deadline:
        return "deadline: another experiment could not finish before it"
    if llm_budget_spent(budget, spent):
        return "LLM token/cost budget spent"
    if spent.idle_rounds >= budget.max_idle_rounds:
        return f"no proposal approved in {budget.max_idle_rounds} rounds"
    champ_failed = champion.metric is None and any(e.kind == "baseline" for e in log) and not spent.in_flight
    if champ_failed:
        errors = "; ".join(f"{e.result.status}: {(e.result.error or '')[:200]}" for e in log if e.kind == "baseline")
        return f"baseline failed: the default configuration did not produce {task.metric.name} ({errors})"
    return None
