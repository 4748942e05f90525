"""Who thinks this round: the branches one dispatch starts, as a pure function of the state.

The router (``dispatch``) and every branch node compute the same plan from the same state, so a
branch node reads the lab state through its normal input instead of a copy in a ``Send``: the
checkpoint then holds the state once per step, not once per branch (measured: the copies were
the larger part of a checkpoint, and grew with the run, quadratically in total).

* **Run branches**: each experimenter holds at most one experiment it started. Free experimenters
  are taken one per team in turn (longest-waiting team first), then a second per team, so no
  team takes every slot, while slots and budgets allow. Slots beyond what the experimenters can
  hold go to the best-ranked team (``LabSettings.spare_slots_to_best_team``).
* **Thinking ahead** (when freed slots are refilled, ``LabContext.refills``): each experimenter
  without a run branch this round drafts ahead (one per team in turn, then a second ...), what
  it approves posted for ``tend`` the moment its turn ends, so the next slot to free has work
  waiting; approved work the state already holds does not stop a team thinking: it expires
  after ``slots`` results, and the freshest thinking is what a slot should get.
* **Thinking on**: a branch whose turn ends while another branch of the round is still in its
  first turn (the round lasts that long anyway) takes another turn ahead, from the same state,
  below what it drafted (shown to it as in flight), while too little approved work waits for the
  slots that free meanwhile (:func:`next_turn`). A run branch that is still thinking gives its
  reserved slot to approved work waiting (``tend``), and what it approves then waits in turn.
* **tend** runs beside every round's branches when slots are refilled.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from langgraph.config import get_config

from autosci_graph.graphs.budget import can_start, llm_passes_left, llm_turns_left
from autosci_graph.graphs.context import LabContext
from autosci_graph.graphs.state import LabState, Notebook
from autosci_graph.lab.teams import branch_holders, rank_key
from autosci_graph.state import add_usage

#: Team branches one round may run at once: nodes ``team-0`` ... of the lab graph.
MAX_BRANCHES = 16


@dataclass(frozen=True)
class Branch:
    team_id: str
    #: The experimenter whose slot it fills; ``None`` when it thinks ahead (no slot).
    holder: str | None


@dataclass(frozen=True)
class RoundPlan:
    branches: tuple[Branch, ...]
    #: Run branches (they come first): the slots this round's thinking may still take.
    reserved: int
    tend: bool
    #: Revisions each branch may make after a rejected proposal: the proposal passes the LLM
    #: budget has beyond one per branch, shared equally (``None``: no LLM budget, ``max_revisions`` apply).
    #: A revision is another proposal and its critiques, as costly as a turn, and a round whose
    #: branches revise unchecked overran ``--max-cost`` by two turns.
    revisions: int | None = None

    @property
    def holding(self) -> list[str]:
        return [b.holder for b in self.branches[: self.reserved] if b.holder]


def plan_round(ctx: LabContext, state: LabState, max_branches: int = MAX_BRANCHES) -> RoundPlan:
    nb = Notebook(state, ctx.task)
    in_flight = nb.in_flight
    # No drafting while the baseline runs: the first champion is made in ``share``, after the
    # superstep, so a team still drafting would hold back every exploration behind it.
    if state.get("stop_reason"):
        return RoundPlan((), 0, False)
    if nb.champion.metric is None:
        # While the baseline runs the experimenters draft ahead (when slots are refilled): tend
        # starts their work on the first champion as soon as the baseline is in, so the first
        # explorations do not wait for a round of thinking, nor for the slowest drafting team.
        if not (ctx.refills and ctx.executor.slots > 1 and in_flight):
            return RoundPlan((), 0, False)
        drafts = [Branch(t.team_id, None) for _ in range(max(1, ctx.settings.experimenters_per_team))
                  for t in sorted(nb.active_teams, key=lambda t: t.team_id)]
        drafts = drafts[:_width(ctx, state, max_branches)]
        return RoundPlan(tuple(drafts), 0, bool(drafts), _revisions(ctx, state, len(drafts)))
    busy = {s.held_by for s in in_flight}
    free = min(ctx.executor.slots - len(in_flight), max_branches)
    # Longest-waiting team first, by position in the submission log, never by clock: parallel
    # branches stamp their submissions in whatever order their threads ran.
    last_turn: dict[str, int] = {}
    for i, sub in enumerate(nb.submitted):
        last_turn[sub.proposal.team] = i
    teams = sorted(nb.active_teams, key=lambda t: (last_turn.get(t.team_id, -1), t.team_id))
    holders = branch_holders(teams, busy, state.get("rotation", 0))
    if teams and len(holders) < free and ctx.settings.spare_slots_to_best_team:
        best = min(teams, key=rank_key)
        spares = (h for n in range(1, ctx.executor.slots + 1) if (h := f"{best.team_id}-spare-{n}") not in busy)
        holders += [(best, next(spares)) for _ in range(free - len(holders))]
    branches: list[Branch] = []
    for team, holder in holders:
        if len(branches) >= free or not can_start(ctx, state, extra_submitted=len(branches), extra_in_flight=len(branches)):
            break
        branches.append(Branch(team.team_id, holder))
    reserved = len(branches)
    # On one slot approved work is never used (autosci_graph.graphs.refill): no thinking ahead.
    # Otherwise every experimenter whose run is in flight drafts the next one meanwhile (one
    # per team in turn, then a second ...), so a slot that frees finds approved work waiting.
    if ctx.refills and ctx.executor.slots > 1 and can_start(ctx, state, extra_submitted=reserved, extra_in_flight=reserved):
        sending = Counter(b.team_id for b in branches)
        ahead = [(t, level) for level in range(max(1, ctx.settings.experimenters_per_team)) for t in teams
                 if sending[t.team_id] <= level]
        branches += [Branch(t.team_id, None) for t, _ in ahead]
    branches = branches[:_width(ctx, state, max_branches)]
    # tend gives freed slots the approved work the state has and what the branches post while
    # they think (a run branch that passes frees its slot for a thinking-ahead team's work).
    tend = bool(branches and ctx.refills)
    return RoundPlan(tuple(branches), min(reserved, len(branches)), tend, _revisions(ctx, state, len(branches)))


def _width(ctx: LabContext, state: LabState, max_branches: int) -> int:
    """Branches this round may run: each is an agent turn, and together they fit the LLM budget."""
    turns = llm_turns_left(ctx, state)
    return max_branches if turns is None else min(max_branches, turns)


def _revisions(ctx: LabContext, state: LabState, width: int) -> int | None:
    """Revisions per branch the LLM budget leaves once every branch has made its first proposal
    pass: each revision is one more pass (a proposal and its critiques)."""
    passes = llm_passes_left(ctx, state)
    return None if passes is None or width == 0 else max(0, passes - width) // width


def round_width(ctx: LabContext, max_branches: int) -> int:
    """Team branches one round may run. With refills ``tend`` runs beside them, and LangGraph
    runs a superstep's tasks on a pool of ``max_concurrency`` threads (by default Python's,
    min(32, CPUs + 4)): a task beyond the pool waits for a thread, and a waiting ``tend`` leaves
    freed slots idle, so the branches leave it one. Without refills, ``max_branches``."""
    if not ctx.refills:
        return max_branches
    try:
        workers = get_config().get("max_concurrency")
    except RuntimeError:  # outside a graph run
        workers = None
    workers = workers or min(32, (os.cpu_count() or 1) + 4)
    return max(1, min(max_branches, workers - 1))


def next_turn(ctx: LabContext, state: LabState, i: int, first: dict[str, Any], out: dict[str, Any], k: int) -> dict[str, Any] | None:
    """The input of branch ``i``'s ``k``-th extra turn when it should think ahead once more: its
    turn ended while another branch of the round is still in its first turn, and too little
    approved work waits for the slots that free meanwhile (:meth:`RoundBoard.another_turn
    <autosci_graph.graphs.board.RoundBoard.another_turn>`); ``None`` to end. It drafts from the
    same state, below what its earlier turns drafted, which it is shown as in flight."""
    ctx.board.turn_ended(i)
    budget = ctx.settings.budget
    turns_left = None if budget.max_tokens is None and budget.max_cost_usd is None else llm_turns_left(ctx, state) or 0
    if not ctx.refills or not can_start(ctx, state) or not ctx.board.another_turn(i, slots=ctx.executor.slots, turns_left=turns_left):
        return None
    plan = plan_round(ctx, state, round_width(ctx, MAX_BRANCHES))
    siblings = sum(1 for b in plan.branches if b.team_id == first["team_id"])
    drafted = [q["proposal"] for q in out.get("queued", []) if q.get("status") == "ready"] + \
        [sub["proposal"] for sub in out.get("submitted", [])]
    return {**first, "holder": None, "again": k, "sibling": first["sibling"] + k * siblings, "drafted": drafted}


def merge_turns(out: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """One branch's writes over several turns: the lists in order (the lab's reducers merge
    them as they would two branches' writes), the usage summed."""
    merged = dict(out)
    for key, value in more.items():
        merged[key] = add_usage(out.get(key, {}), value) if key == "usage" else list(out.get(key, [])) + list(value)
    return merged
