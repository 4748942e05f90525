"""Records a scientist reads and answers with: the lab as one agent sees it on one turn
(:class:`LabView`, with the :class:`Knowledge` derived from the log and the memories recalled for
it) and the structured replies to ``organize``, ``propose`` and ``critique`` (drafts, before ids).

Plain frozen pydantic models beside :mod:`autosci_graph.state`, so the method's rules
(:mod:`autosci_graph.lab`) read them without depending on the scientist interface;
:mod:`autosci_graph.scientists.base` re-exports them, as scientists are written against it.
"""

from __future__ import annotations

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
    #: Experimenters of the same team drafting ahead of this one in the same round, from the
    #: same state: what they draft is not in ``in_flight`` yet, so this one should propose
    #: something else (a scientist that ranks its options moves down the ranking by this many).
    siblings_drafting: int = 0
    #: The lab's seed (``LabSettings.seed``): a scientist's randomness derives from it and the state.
    seed: int = 0
    #: The champion's code state: each editable file's text with every accepted change applied.
    #: A code proposal is an increment against these texts (its diff is ``champion.diff``).
    champion_files: dict[str, str] = Field(default_factory=dict)
    #: The task's shipped code ideas (``ideas/``); each is an axis ``code:<axis>`` of its own.
    ideas: list[CodeIdea] = Field(default_factory=list)

    def untried_ideas(self) -> list[CodeIdea]:
        """The shipped ideas no proposal has run yet (a run's proposal carries the idea's diff)."""
        tried = {e.proposal.change.diff for e in self.experiments if e.proposal.change.diff}
        return [i for i in self.ideas if i.diff not in tried]


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
