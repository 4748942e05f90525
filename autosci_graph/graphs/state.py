"""The graph state of a lab run: plain JSON data, with reducers on keys parallel branches write.

Records live in :mod:`autosci_graph.state`; the graph keeps their ``to_state()`` dicts so the
SQLite checkpointer stores them without custom serializers. :class:`Notebook` turns a state
back into typed records for the code that reasons about it.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from functools import cached_property, lru_cache
from typing import Annotated, Any, TypedDict

from langgraph.channels.delta import DeltaChannel

from autosci_graph.lab.knowledge import knowledge
from autosci_graph.lab.lead import as_base, candidate_of, candidate_runs, lead_of
from autosci_graph.lab.posterior import Posterior
from autosci_graph.scientists.base import LabView
from autosci_graph.state import (
    Champion,
    DeadEnd,
    ExperimentEntry,
    Review,
    RunResult,
    Submission,
    Team,
    Candidate,
    CodeIdea,
    Usage,
    add_usage,
    merge_by_key,
    merge_ready,
)
from autosci_graph.task import ResearchTask


def _batched(pairwise: Callable[[Any, Any], Any]) -> Callable[[Any, Sequence[Any]], Any]:
    """A pairwise reducer as a :class:`DeltaChannel` reducer (state, batch of writes)."""
    def reduce(state: Any, writes: Sequence[Any]) -> Any:
        return functools.reduce(pairwise, writes, state or [])
    reduce.__name__ = getattr(pairwise, "__name__", "reduce")
    return reduce


# The lists that grow with the run are delta channels: a checkpoint stores what each step added,
# not the whole list again (measured: 242 kB of checkpoint per experiment at 50 experiments,
# 450 kB at 66, quadratic, before; see BENCHMARKS.md, "Checkpoint size per experiment").
Appended = Annotated[list[dict[str, Any]], DeltaChannel(_batched(operator.add))]


class LabState(TypedDict, total=False):
    """The shared experimental state (the lab notebook) of one run."""

    run_id: str
    task_name: str
    started_at: float
    champion: dict[str, Any] | None
    #: Every team ever formed (dissolved ones stay, for the report), merged by team id: a node
    #: writes the teams it changed (:func:`changed_teams`).
    teams: Annotated[list[dict[str, Any]], DeltaChannel(_batched(merge_by_key("team_id")))]
    #: Every finished experiment with the lab's decision (ExperimentEntry dicts), in order.
    log: Appended
    #: Every experiment handed to the executor (Submission dicts); in flight until logged.
    submitted: Appended
    #: Every review, approvals and rejections alike.
    reviews: Appended
    dead_ends: Appended
    #: Every candidate ever tested (Candidate dicts), the open ones with their verdict pending.
    candidates: Annotated[list[dict[str, Any]], DeltaChannel(_batched(merge_by_key("candidate_id")))]
    #: Team formed / falsified / regroup / promotion / near miss ... for the report's timeline.
    events: Appended
    usage: Annotated[dict[str, Any], add_usage]
    #: Results collected from the executor, consumed by ``share``.
    inbox: list[dict[str, Any]]
    rotation: int
    idle_rounds: int
    stop_reason: str | None
    #: Agent turns that gave nothing usable (TurnFailure dicts, autosci_graph.lab.retry), every round.
    failed_turns: Appended
    #: Rounds in a row that failed (reset by a round that formed a team or started an experiment).
    failed_rounds: int
    #: Formations in a row that formed no team, and the round the next one is due in (backoff).
    formation_failures: int
    next_formation_at: int
    #: Where this round's submissions start in ``submitted``, and whether organize formed a team:
    #: how the next organize tells whether the round progressed.
    round_start: int
    round_formed: bool
    #: Proposals approved but not run yet (the team's approved work), for a slot that frees
    #: while teams think; each valid while the lab builds on the base it was approved on.
    queued: Annotated[list[dict[str, Any]], DeltaChannel(_batched(merge_ready))]
    #: Proposals the teams chose to run, waiting for a human verdict before they cost compute
    #: (``LabSettings.human_approval``; :mod:`autosci_graph.graphs.approval`), merged by proposal id.
    awaiting: Annotated[list[dict[str, Any]], merge_awaiting]


def merge_awaiting(left: list[dict[str, Any]] | None, right: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Reducer of the proposals waiting for a human: merged by proposal id; an entry whose status
    is no longer ``awaiting`` (answered) leaves the list."""
    out = {d["proposal_id"]: d for d in (left or [])}
    for d in right or []:
        out[d["proposal_id"]] = d
    return [d for d in out.values() if d.get("status") == "awaiting"]


def changed_teams(state: LabState, teams: Sequence[Team]) -> list[dict[str, Any]]:
    """The teams to write back: those new or changed since ``state`` (the channel merges by id)."""
    before = {d["team_id"]: d for d in state.get("teams", [])}
    return [d for d in (t.to_state() for t in teams) if before.get(d["team_id"]) != d]


def finished_ids(state: LabState) -> set[str]:
    """Experiment ids already in the log (cheap: no record parsing)."""
    return {d["result"]["experiment_id"] for d in state.get("log", [])}


@dataclass(frozen=True)
class Notebook:
    """Typed, read-only access to a :class:`LabState`. Records are parsed once per notebook
    (nodes read the log several times per step)."""

    state: LabState
    task: ResearchTask

    @cached_property
    def log(self) -> list[ExperimentEntry]:
        return [ExperimentEntry.model_validate(d) for d in self.state.get("log", [])]

    @cached_property
    def submitted(self) -> list[Submission]:
        return [Submission.model_validate(d) for d in self.state.get("submitted", [])]

    @cached_property
    def in_flight(self) -> list[Submission]:
        done = finished_ids(self.state)
        return [s for s in self.submitted if s.experiment_id not in done]

    @cached_property
    def teams(self) -> list[Team]:
        return [Team.model_validate(d) for d in self.state.get("teams", [])]

    @property
    def active_teams(self) -> list[Team]:
        return [t for t in self.teams if t.status == "active"]

    @cached_property
    def champion(self) -> Champion:
        c = self.state.get("champion")
        if c is None:
            return Champion(experiment_id=None, config=self.task.default_config())
        return Champion.model_validate(c)

    @cached_property
    def candidates(self) -> list[Candidate]:
        return [Candidate.model_validate(d) for d in self.state.get("candidates", [])]

    @cached_property
    def dead_ends(self) -> list[DeadEnd]:
        return [DeadEnd.model_validate(d) for d in self.state.get("dead_ends", [])]

    @property
    def reviews(self) -> list[Review]:
        return [Review.model_validate(d) for d in self.state.get("reviews", [])]

    @property
    def usage(self) -> Usage:
        u = self.state.get("usage") or {}
        return Usage(**{k: v for k, v in u.items() if k in Usage.model_fields})

    def results(self) -> list[RunResult]:
        return [e.result for e in self.log]

    @cached_property
    def _subs(self) -> dict[str, Submission]:
        return {s.experiment_id: s for s in self.submitted}

    @cached_property
    def _results_by_candidate(self) -> dict[str, list[RunResult]]:
        out: dict[str, list[RunResult]] = {}
        for r in self.results():
            if r.experiment_id in self._subs:
                out.setdefault(candidate_of(self._subs[r.experiment_id]), []).append(r)
        return out

    def runs_of(self, cand: Candidate) -> list[RunResult]:
        """A candidate's successful runs of its own change."""
        return candidate_runs(self.task, cand, self._results_by_candidate.get(cand.candidate_id, []), self._subs)

    @cached_property
    def posterior(self) -> Posterior | None:
        """The model of the metric over every successful run (:mod:`autosci_graph.lab.posterior`)."""
        return Posterior.fit(self.task, self.log, ideas=task_ideas(self.task))

    def lead(self) -> tuple[Champion, Candidate | None]:
        """What teams build on: the lab's lead as a champion (:mod:`autosci_graph.lab.lead`), or
        the champion itself when no candidate is open."""
        lead = lead_of(self.task, self.candidates, self.champion, self.runs_of, posterior=self.posterior)
        if lead is None:
            return self.champion, None
        return as_base(lead, self.runs_of(lead)), lead

    def _stepped_from(self, lead: Candidate) -> dict[str, Any]:
        parent = next((c for c in self.candidates if c.candidate_id == lead.parent), None)
        return dict(parent.change.knobs if parent is not None else lead.base.config)

    def view(self, *, feedback: list[Review] | None = None, experiments_left: int | None = None, seed: int = 0,
             on_lead: bool = False, siblings_drafting: int = 0) -> LabView:
        """The shared state as an agent reads it; ``on_lead``: for a team about to step, the
        champion it builds on is the lab's lead when there is one; ``siblings_drafting``: how
        many of the team's experimenters draft ahead of this one in the same round."""
        log = self.log
        champion, lead = self.lead() if on_lead else (self.champion, None)
        return LabView(
            task=self.task,
            champion=champion,
            stepped_from=self._stepped_from(lead) if lead is not None else None,
            experiments=log,
            teams=self.teams,
            dead_ends=self.dead_ends,
            knowledge=knowledge(self.task, log, extra_axes=[i.axis_tag for i in task_ideas(self.task)]),
            in_flight=[s.proposal for s in self.in_flight],
            experiments_left=experiments_left,
            feedback=feedback or [],
            siblings_drafting=siblings_drafting,
            seed=seed,
            champion_files=champion_files(self.task, champion.diff),
            ideas=task_ideas(self.task),
        )


@lru_cache(maxsize=32)
def _files(root: Path, editable: tuple[str, ...], diff: str | None) -> tuple[tuple[str, str], ...]:
    from autosci_graph.tools.codestate import files_at_root

    return tuple(sorted(files_at_root(root, editable, diff).items()))


@lru_cache(maxsize=8)
def _ideas(root: Path, editable: tuple[str, ...]) -> tuple[CodeIdea, ...]:
    from autosci_graph.ideas import load_ideas

    return tuple(load_ideas(root, editable))


def task_ideas(task: ResearchTask) -> list[CodeIdea]:
    """The task's ``ideas/`` (loaded once per task folder)."""
    if not task.editable or not (task.root / "ideas").is_dir():
        return []
    return list(_ideas(task.root, task.editable))


def champion_files(task: ResearchTask, diff: str | None) -> dict[str, str]:
    """The editable files at the champion's code state (read once per champion)."""
    if not task.editable or not all((task.root / rel).is_file() for rel in task.editable):
        return {}
    return dict(_files(task.root, task.editable, diff or None))

