"""Refilling a freed slot from the teams' approved work, without waiting for anyone to think.

A team's turn approves up to ``proposals_per_turn`` proposals and runs one; the rest wait in the
lab's ``queued`` list as directions: when one runs, it is applied to whatever the lab builds on
then, so a change of lead (which the posterior can make without a new best run) does not
discard it; its age and the critique's rules below bound how stale it may be. When a
slot frees (``tend`` beside the thinking branches, or ``collect``), the slot goes at once to the
approved work of the finished run's team, else of the best-ranked team that has some. Before it
runs, an entry is checked again as the critique's automatic rules would (a repeat of a measured
configuration, a failed range) and against this round's claims: approved work is cheap to keep,
never a way around critique. It is also dropped once ``slots`` results have come in since it was
approved: on S slots a fresh proposal is blind to the S - 1 results still running anyway, so
approved work is never staler than that (on one slot it is never used: the next result is always
worth waiting for).

Only with an executor whose runs outlive ``submit`` (``LabContext.refills``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from autosci_graph.graphs.budget import can_start
from autosci_graph.graphs.context import LabContext, emit
from autosci_graph.graphs.state import LabState, Notebook
from autosci_graph.graphs.team import start_exploration
from autosci_graph.lab.changes import StackingError, change_key, change_to_run
from autosci_graph.lab.critique import auto_review
from autosci_graph.lab.teams import rank_key, team_experimenters
from autosci_graph.state import Champion, Change, Proposal, Submission


@dataclass
class Refiller:
    """Hands freed slots the teams' approved work, one entry per freed slot."""

    ctx: LabContext
    state: LabState
    #: Slots already promised this round (thinking branches that may still submit).
    reserved: int = 0
    #: Experimenters holding a run or a thinking branch's slot.
    busy: set[str] = field(default_factory=set)
    submitted: list[Submission] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Results in besides the state's log (this round's, brought in before or by this refiller).
    arrived: int = 0

    def __post_init__(self) -> None:
        self.nb = Notebook(self.state, self.ctx.task)
        self.base, _ = self.nb.lead()
        self.view = self.nb.view(seed=self.ctx.settings.seed, on_lead=True)
        self.ran = {s.proposal.proposal_id for s in self.nb.submitted}
        self.posted: list[str] = []
        self.ready: list[dict[str, Any]] = []
        self.offer(self.state.get("queued", []))
        self.busy |= {s.held_by for s in self.nb.in_flight}
        self.ranked = sorted(self.nb.active_teams, key=rank_key)

    def first_champion(self, champion: Champion) -> None:
        """The baseline is in while the round still thinks: build on the first champion now, the
        one ``share`` will make of the same runs (:func:`~autosci_graph.graphs.share.baseline_champion`)."""
        self.state = {**self.state, "champion": champion.to_state()}  # type: ignore[typeddict-item]
        self.nb = Notebook(self.state, self.ctx.task)
        self.base, _ = self.nb.lead()
        self.view = self.nb.view(seed=self.ctx.settings.seed, on_lead=True)

    def offer(self, entries: list[dict[str, Any]], *, posted: bool = False) -> None:
        """More approved work: entries of the state's ``queued``, or ``posted`` by a branch of
        this round the moment it approved them (:mod:`autosci_graph.graphs.board`): their age
        counts from now, the results in by the time it was approved. One already run is never
        offered again."""
        now = len(self.nb.log) + self.arrived
        fresh = [dict(q, results=now) if posted else q for q in entries
                 if q.get("status") == "ready" and q["proposal_id"] not in self.ran]
        self.ready += fresh
        if posted:
            self.posted += [q["proposal_id"] for q in fresh]

    def after(self, finished: Submission) -> Submission | None:
        """The run that takes the slot ``finished`` freed, started; ``None`` if no approved work
        is valid or the budgets cannot take one more."""
        self.finished(finished)
        return self.fill(finished)

    def finished(self, run: Submission) -> None:
        """``run`` has finished: its experimenter is free."""
        self.busy.discard(run.held_by)
        self.arrived += 1

    def fill(self, freed: Submission | None = None) -> Submission | None:
        """Start approved work on a free slot, the approved work of the team of ``freed`` (the
        run that freed it) first, else of the best-ranked team that has some."""
        extra = self.reserved + len(self.submitted)
        # Work approved while the baseline runs waits for the first champion: a candidate is
        # judged against the champion's mean.
        if not self.ready or self.nb.champion.metric is None or not can_start(
                self.ctx, self.state, extra_submitted=extra, extra_in_flight=extra):
            return None
        own = [t for t in self.ranked if freed is not None and t.team_id == freed.proposal.team]
        for team in own + [t for t in self.ranked if t not in own]:
            for q in [q for q in self.ready if q["team"] == team.team_id]:
                self.ready.remove(q)
                p = Proposal.model_validate(q["proposal"])
                try:
                    change = change_to_run(self.base, p.change, stack=self.ctx.stack, description=p.rationale)
                except StackingError:
                    self.marks.append(dict(q, status="stale", why="its code no longer applies"))
                    continue
                key = change_key(self.ctx.task, change)
                why = self._stale(q, p, change)
                if why is None and not self.ctx.claim(key):
                    why = "claimed this round"
                if why is not None:
                    self.marks.append(dict(q, status="stale", why=why))
                    continue
                free = [h for h in team_experimenters(team) if h not in self.busy]
                holder = freed.held_by if freed is not None and freed.held_by in team_experimenters(team) and freed.held_by not in self.busy \
                    else (free[0] if free else f"{team.team_id}-spare-refill-{len(self.submitted) + 1}")
                sub, cand = start_exploration(self.ctx, self.nb, p, change, key, holder=holder)
                self.busy.add(holder)
                self.ran.add(p.proposal_id)
                self.submitted.append(sub)
                self.candidates.append(cand.to_state())
                self.marks.append(dict(q, status="run"))
                event = {"type": "slot_refilled", "experiment_id": sub.experiment_id, "team": team.team_id, "holder": holder,
                         "at": time.time()}
                self.events.append(event)
                emit(event)
                return sub
        return None

    def _stale(self, q: dict[str, Any], p: Proposal, change: Change) -> str | None:
        """Why approved work may no longer run, checked as the critique would check it now."""
        # The baseline's runs do not age it: they repeat the default, which every draft starts from.
        baseline = sum(1 for s in self.nb.submitted if s.kind == "baseline")
        if len(self.nb.log) + self.arrived - max(q.get("results", 0), baseline) >= self.ctx.executor.slots:
            return "results came in since it was approved"
        review = auto_review(p, self.view, [], self.ctx.settings.rules, candidate=change)
        return None if review is None else f"critique: {review.rule}"

    def update(self) -> dict[str, Any]:
        """What the refills write to the lab state: runs, marks, and the posted work left
        ready with the age it was posted at (written after the branches' copies, it replaces them)."""
        left = [q for q in self.ready if q["proposal_id"] in set(self.posted)]
        return {"submitted": [s.to_state() for s in self.submitted], "candidates": self.candidates,
                "queued": self.marks + left, "events": self.events}


def fill_free_slots(ctx: LabContext, state: LabState) -> dict[str, Any]:
    """At the start of a round, every free slot takes approved work at once (what was posted
    late in the last round), instead of waiting for a run branch to think; the round's branches
    then think ahead for the next slots to free."""
    refiller = Refiller(ctx, state)
    for _ in range(ctx.executor.slots - len(refiller.nb.in_flight)):
        if refiller.fill() is None:
            break
    return refiller.update()
