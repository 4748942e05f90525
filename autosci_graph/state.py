"""Records of the shared experimental state (the lab notebook) and the graph state.

Records are frozen pydantic models that serialize to JSON. The graph state itself holds only their
JSON form (plain dicts), so checkpoints round-trip without custom serializers; convert at the edges
with ``Model.model_validate(d)`` and ``model.to_state()``.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autosci_graph.task import KnobValue

RunStatus = Literal["ok", "timeout", "crash", "oom", "diverged", "no_metric", "bad_change"]
FAILURE_STATUSES: tuple[RunStatus, ...] = ("timeout", "crash", "oom", "diverged", "no_metric", "bad_change")
#: ``remeasure``: a repeat run of the champion on a new seed (noise estimate, champion mean).
Outcome = Literal["keep", "discard", "crash", "pending_confirmation", "remeasure"]
Direction = Literal["increase", "decrease", "set", "code"]
TeamStatus = Literal["active", "falsified", "merged", "dissolved"]
#: ``open``: more seeds wanted; ``rebased``: re-expressed on a newer champion as another candidate;
#: ``moot``: the champion moved on the same axes, so the question no longer applies;
#: ``superseded``: a step from it, as the lab's lead, measured better and took its place.
CandidateStatus = Literal["open", "promoted", "rejected", "rebased", "moot", "superseded"]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_state(self) -> dict[str, Any]:
        """The JSON-able form kept in graph state and checkpoints."""
        return self.model_dump(mode="json")


class Change(Record):
    """A concrete change to the task: knob overrides and/or a unified diff of editable files."""

    knobs: dict[str, KnobValue] = Field(default_factory=dict)
    diff: str | None = None
    description: str = ""

    def is_empty(self) -> bool:
        return not self.knobs and not (self.diff and self.diff.strip())


class Provenance(Record):
    """Everything needed to reproduce a run with one command."""

    command: list[str]
    cwd: str
    seed: int
    slot: str
    env_fingerprint: dict[str, str] = Field(default_factory=dict)
    data_hash: str | None = None
    task_root: str = ""
    task_name: str = ""
    #: How the run was contained: ``"bwrap"`` or ``"none"`` (``""`` in records older than the sandbox).
    sandbox: str = ""
    #: Whether the run could use the network (True without a sandbox).
    network: bool = False
    #: Names of the environment variables the run was given; never their values.
    env_names: list[str] = Field(default_factory=list)
    #: Caps the run ran under, e.g. ``{"memory_mb": 4096, "processes": 4096}``.
    limits: dict[str, int] = Field(default_factory=dict)
    #: The machine that ran it when that is not the lab's own (a Ray node: ``"host (ray node <id>)"``).
    node: str = ""


class RunResult(Record):
    """The outcome of one experiment. A failure is data, never an exception."""

    experiment_id: str
    status: RunStatus
    change: Change
    seed: int
    metric_name: str
    metric: float | None = None
    #: Every ``name: value`` the run reported (summary block, last JSON line, regex).
    metrics: dict[str, float] = Field(default_factory=dict)
    #: Learning curve from JSON lines: one dict per line, e.g. ``{"step": 100, "val_bpb": 1.2}``.
    curve: list[dict[str, float]] = Field(default_factory=list)
    error: str | None = None
    log_tail: str = ""
    log_path: str | None = None
    workspace: str | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    provenance: Provenance | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.metric is not None

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)


class RunRequest(Record):
    """What an executor is asked to run. ``experiment_id`` makes submission idempotent."""

    experiment_id: str
    change: Change = Field(default_factory=Change)
    seed: int = 0


# ----------------------------------------------------------------------------------------------
# The lab notebook
# ----------------------------------------------------------------------------------------------


class Proposal(Record):
    """A tagged, concrete proposal an agent wants to run."""

    proposal_id: str
    author: str
    team: str
    axis: str | None
    direction: Direction | None
    change: Change
    rationale: str = ""
    prediction: str = ""
    bold: bool = False
    #: Required when the change falls inside a recorded failed range.
    what_is_different: str = ""
    #: Deliberately tests the team's hypothesis against its claimed direction.
    falsification_test: bool = False
    revision: int = 0


class Review(Record):
    """A critique of a proposal. A review without a reason is not a review."""

    proposal_id: str
    reviewer: str
    approve: bool
    reason: str = Field(min_length=1)
    rule: str | None = None  # name of the automatic rule that fired, if any


class Hypothesis(Record):
    statement: str
    prediction: str
    falsification: str
    axes: list[str] = Field(default_factory=list)
    #: The direction the hypothesis claims per axis (e.g. ``{"lr": "increase"}``); a proposal
    #: going the other way contradicts it unless it is tagged as a falsification test.
    directions: dict[str, Direction] = Field(default_factory=dict)


class Team(Record):
    """A team built around a falsifiable hypothesis. Counters are updated by ``share``."""

    team_id: str
    hypothesis: Hypothesis
    members: list[str] = Field(default_factory=list)
    status: TeamStatus = "active"
    support: int = 0
    refute: int = 0
    rotations: int = 0
    rotations_since_support: int = 0
    experiments: int = 0
    formed_at_experiment: int = 0


class Champion(Record):
    """The best accepted result; every team builds on it. ``metric`` is the mean over ``seeds``
    and is ``None`` until the baseline runs of the default configuration have finished."""

    experiment_id: str | None
    config: dict[str, KnobValue]
    diff: str | None = None
    metric: float | None = None
    seeds: list[int] = Field(default_factory=list)
    metrics_by_seed: dict[str, float] = Field(default_factory=dict)
    description: str = "task default configuration"


class DeadEnd(Record):
    """A discarded direction, structured so critics can match proposals against it."""

    experiment_id: str
    axis: str | None
    direction: str | None
    value: KnobValue | None = None
    delta: float | None = None
    family: str = ""
    reason: str = ""
    #: ``"crash"`` (no result: a crash, divergence, time-out) or ``"discard"`` (measured worse).
    outcome: Literal["crash", "discard"] = "discard"
    #: Where it failed: the key of its full configuration with ``axis`` left out (every other knob
    #: and the code). A measured loss is evidence about its range only from that same place: on a
    #: task whose knobs interact, the learning rate that lost at one batch size can win at
    #: another. ``None``: not recorded (older registries): the range binds everywhere.
    context: str | None = None
    at: float = Field(default_factory=time.time)


class ExperimentEntry(Record):
    """One line of the experiment log: a run and what the lab decided about it."""

    index: int
    result: RunResult
    proposal: Proposal
    outcome: Outcome
    #: Improvement over the champion of the time, positive = better whatever the direction.
    gain: float | None = None
    champion_metric: float | None = None
    #: Why the run happened: a team's exploration, a confirmation on another seed, or the baseline.
    kind: Literal["explore", "confirm", "baseline", "noise"] = "explore"
    note: str = ""


class Submission(Record):
    """An approved experiment handed to the executor; finished once its entry is in the log."""

    experiment_id: str
    proposal: Proposal
    seed: int
    kind: Literal["explore", "confirm", "baseline", "noise"] = "explore"
    #: For a confirmation: the experiment whose result it re-measures on another seed.
    candidate_of: str | None = None
    submitted_at: float = Field(default_factory=time.time)
    #: The full change run (champion configuration plus the proposal's overrides).
    change: Change = Field(default_factory=Change)
    #: The champion's metric when this was submitted: its base, should the champion move meanwhile.
    base_metric: float | None = None
    #: The experimenter whose slot it holds (each holds at most one experiment it starts); by
    #: default the proposal's author. Baseline and housekeeping runs hold no experimenter.
    holder: str | None = None

    @property
    def held_by(self) -> str:
        return self.holder or self.proposal.author


class Candidate(Record):
    """A change under test against one champion: the direction a proposal took (its knob
    overrides and code increment) and the full change it is measured as. Its evidence is every
    successful run of ``change``; the verdict comes from :func:`autosci_graph.lab.promotion.judge`."""

    candidate_id: str
    proposal: Proposal
    #: The full change run: the champion it is compared with, plus the proposal's direction.
    change: Change
    #: The champion it is compared with, as it was when the candidate opened.
    base: Champion
    status: CandidateStatus = "open"
    #: A rebased candidate carries the evidence of the one it came from.
    rebased_from: str | None = None
    prior_gain: float | None = None
    note: str = ""
    #: The lead it stepped from (the lab's best open candidate when it was proposed; see
    #: :mod:`autosci_graph.lab.lead`); ``None`` for a step from the champion itself.
    parent: str | None = None
    #: The code increments along the leads it stepped from, in order (each written against the
    #: code before it), so its whole direction can be re-applied on a new champion.
    increments: list[str] = Field(default_factory=list)
    #: Steps from it, as the lead, that measured no better since its last seed.
    failed_steps: int = 0


class CodeIdea(Record):
    """A candidate code change a task ships in ``ideas/`` (loaded by :mod:`autosci_graph.ideas`)."""

    #: The file name without ``.diff``; unique within a task.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    #: One line: what the change does and where it comes from.
    description: str = Field(min_length=1)
    #: Ideas sharing an axis are alternatives; ideas on different axes compose.
    axis: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    #: The unified diff against the task's original files (header lines removed).
    diff: str
    #: The editable files the diff touches, as the task names them.
    files: list[str]

    @property
    def axis_tag(self) -> str:
        """The axis name proposals and teams use: ``code:<axis>``, never a knob's name."""
        return f"code:{self.axis}"


class Usage(Record):
    """LLM usage added up across calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    failed_calls: int = 0


def add_usage(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: sum usage written by parallel branches."""
    a, b = a or {}, b or {}
    keys = set(a) | set(b)
    return {k: (a.get(k, 0) or 0) + (b.get(k, 0) or 0) for k in keys}


def merge_ready(left: list[dict[str, Any]] | None, right: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Reducer of the lab's approved work: merged by proposal id, and an entry whose status is
    no longer ``ready`` (run, replaced, stale) leaves the list, so it never grows with the run."""
    out = {d["proposal_id"]: d for d in (left or [])}
    for d in right or []:
        out[d["proposal_id"]] = d
    return [d for d in out.values() if d.get("status") == "ready"]


def merge_by_key(key: str):  # type: ignore[no-untyped-def]
    """Reducer factory: merge lists of dicts, a later dict replacing an earlier one with the same key."""

    def reduce(left: list[dict[str, Any]] | None, right: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        out = {d[key]: d for d in (left or [])}
        for d in right or []:
            out[d[key]] = d
        return list(out.values())

    reduce.__name__ = f"merge_by_{key}"
    return reduce
