"""The scientist interface: who thinks. The graph never talks to a model directly.

A scientist is *stateless*: every call receives the shared experimental state (a :class:`LabView`)
and returns structured actions, never prose. Three hooks, one per act of the method:

* :meth:`Scientist.organize` — post team hypotheses (at start and on regroup);
* :meth:`Scientist.propose` — turn a team's hypothesis into concrete, tagged changes;
* :meth:`Scientist.critique` — review someone else's proposal before it costs compute.

Implementations: :class:`~autosci_graph.scientists.search.SearchScientist` (offline, no LLM) and
:class:`~autosci_graph.scientists.llm.LLMScientist` (any LangChain chat model). Implementations
must be thread-safe: parallel team branches call one scientist at the same time.

A new implementation joins the contract suite, ``tests/unit/test_scientist_contract.py``, with one
entry in its ``IMPLS``; it then passes what the graph relies on: hypotheses on the task's axes, tagged
proposals inside the search space on distinct axes and never the champion again, reviews with reasons,
answers that depend on the view alone from any thread, and usage counting exactly its model calls.
"""

from __future__ import annotations

import abc
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from autosci_graph.state import Champion, CodeIdea, DeadEnd, Direction, ExperimentEntry, KnobValue, Proposal, Review, Team, Usage
from autosci_graph.task import ResearchTask


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AxisEffect(_Model):
    """What the log says about one axis (a knob, or a code-change tag)."""

    axis: str
    tried: int = 0
    keeps: int = 0
    discards: int = 0
    crashes: int = 0
    #: Mean gain (positive = better) of runs that touched this axis, in metric units.
    mean_gain: float | None = None
    best_gain: float | None = None
    #: Gain per direction, e.g. {"increase": 0.02, "decrease": -0.05}.
    by_direction: dict[str, float] = Field(default_factory=dict)


class Knowledge(_Model):
    """Derived facts every agent reads: noise floor, measured effects, untested axes."""

    noise_sigma: float | None = None
    noise_samples: int = 0
    effects: dict[str, AxisEffect] = Field(default_factory=dict)
    untested_axes: list[str] = Field(default_factory=list)


class RecalledMemory(_Model):
    """A similar past experiment recalled from memory, as shown to agents."""

    experiment_id: str
    text: str
    outcome: str | None = None
    status: str | None = None
    axis: str | None = None
    direction: str | None = None
    knobs: dict[str, KnobValue] = Field(default_factory=dict)
    delta: float | None = None
    score: float = 0.0


class LabView(_Model):
    """The shared experimental state as one agent sees it on one turn."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    task: ResearchTask
    #: What this agent builds on: the lab's champion, or for a team about to step the lab's lead
    #: (its best open candidate, not yet promoted; see :mod:`autosci_graph.lab.lead`).
    champion: Champion
    #: When ``champion`` is the lead: the configuration it stepped from, so its move can be bracketed.
    stepped_from: dict[str, KnobValue] | None = None
    experiments: list[ExperimentEntry] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    dead_ends: list[DeadEnd] = Field(default_factory=list)
    knowledge: Knowledge = Field(default_factory=Knowledge)
    #: Proposals already queued or running, so agents do not duplicate them.
    in_flight: list[Proposal] = Field(default_factory=list)
    experiments_left: int | None = None
    #: Reviews that rejected this agent's earlier drafts in the current turn (for revision).
    feedback: list[Review] = Field(default_factory=list)
    #: The lab's seed (``LabSettings.seed``): a scientist's randomness derives from it and the state.
    seed: int = 0
    #: The champion's code state: each editable file's text with every accepted change applied.
    #: A code proposal is an increment against these texts (its diff is ``champion.diff``).
    champion_files: dict[str, str] = Field(default_factory=dict)
    #: The task's shipped code ideas (``ideas/``); each is an axis ``code:<axis>`` of its own.
    ideas: list[CodeIdea] = Field(default_factory=list)


class HypothesisDraft(_Model):
    """A team hypothesis an agent posts during organization."""

    statement: str = Field(min_length=8)
    prediction: str = Field(min_length=3)
    falsification: str = Field(min_length=3)
    axes: list[str] = Field(min_length=1)
    #: The direction claimed per axis, when the hypothesis claims one.
    directions: dict[str, Direction] = Field(default_factory=dict)
    author: str = ""
    #: Agent-estimated promise in [0, 1]; used to rank drafts when votes tie.
    promise: float = Field(default=0.5, ge=0.0, le=1.0)


class ProposalDraft(_Model):
    """A concrete, tagged change an agent wants to run (before ids and review)."""

    axis: str | None
    direction: Direction | None
    knobs: dict[str, KnobValue] = Field(default_factory=dict)
    diff: str | None = None
    rationale: str = ""
    prediction: str = ""
    bold: bool = False
    what_is_different: str = ""
    falsification_test: bool = False


class ReviewDraft(_Model):
    approve: bool
    reason: str = Field(min_length=1)


class OrganizeReply(_Model):
    hypotheses: list[HypothesisDraft] = Field(default_factory=list)
    #: Votes for drafts by index into ``hypotheses`` (one list per voting agent).
    votes: list[int] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    dropped: list[str] = Field(default_factory=list)


class ProposeReply(_Model):
    proposals: list[ProposalDraft] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    #: Why answers were dropped (malformed after repair), for the log.
    dropped: list[str] = Field(default_factory=list)


class CritiqueReply(_Model):
    review: ReviewDraft | None
    usage: Usage = Field(default_factory=Usage)
    dropped: list[str] = Field(default_factory=list)


class Scientist(abc.ABC):
    """Organizes teams, proposes experiments and critiques proposals from the shared state."""

    #: Short name used in logs and reports.
    name: str = "scientist"

    @abc.abstractmethod
    def organize(self, view: LabView, *, n_teams: int, agents: list[str]) -> OrganizeReply:
        """Post hypotheses for up to ``n_teams`` teams (more drafts than teams is welcome:
        the lab votes and keeps the best). Each must own at least one never-tested axis when
        any is left (``view.knowledge.untested_axes``)."""

    @abc.abstractmethod
    def propose(
        self, view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int = 2
    ) -> ProposeReply:
        """Up to ``n`` tagged proposals for ``team``, on different axes, at least one bold.
        ``recalled`` holds the most similar past failures from memory."""

    @abc.abstractmethod
    def critique(
        self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]
    ) -> CritiqueReply:
        """Approve or reject a proposal written by someone else, always with a reason."""

    def describe(self) -> dict[str, Any]:
        """What to record about this scientist in a run's report."""
        return {"name": self.name, "class": type(self).__name__}
