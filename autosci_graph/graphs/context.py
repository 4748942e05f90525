"""Run settings and services, handed to every node through LangGraph's ``context_schema``.

Nothing here is checkpointed: a resumed run gets its context again from the caller (the CLI keeps
the settings in ``run.json``). Nodes read settings only from here, never from the environment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from langgraph.config import get_stream_writer

from autosci_graph.errors import SettingsError
from autosci_graph.graphs.board import RoundBoard
from autosci_graph.lab.budget import Budget
from autosci_graph.lab.changes import Stack
from autosci_graph.lab.critique import CritiqueRules
from autosci_graph.lab.promotion import PromotionRule
from autosci_graph.lab.teams import TeamRules
from autosci_graph.task import ResearchTask

#: LangGraph's ``END``, typed as the literal routers return.
DONE: Literal["__end__"] = "__end__"
#: How long a team branch waits for an earlier branch of its round to claim its configuration.
TURN_TIMEOUT_S = 60.0

if TYPE_CHECKING:
    from autosci_graph.memory.base import ExperimentMemory
    from autosci_graph.scientists.base import Scientist
    from autosci_graph.tools.base import Executor


@dataclass(frozen=True)
class LabSettings:
    """How a lab run is organized and when it stops. Defaults follow the authors' runs."""

    #: The lab's own randomness (the scientist's tie-breaks, the surrogate's candidates). With the
    #: same seed and the same results, a lab makes the same decisions; the run id plays no part.
    seed: int = 0
    #: Teams formed at start and after each regroup.
    n_teams: int = 3
    #: Analysts write hypotheses and critique; experimenters turn hypotheses into runs.
    analysts_per_team: int = 1
    experimenters_per_team: int = 2
    #: Drafts each proposer writes per turn (two, on different axes, one bold).
    proposals_per_turn: int = 2
    #: A slot that frees while teams are thinking is refilled at once from the approved work of
    #: the team whose experimenter it was (its approved, unrun proposals on the same base),
    #: instead of idling until the slowest team's turn ends (``tend`` in the lab graph).
    refill_while_thinking: bool = True
    #: Slots beyond what the experimenters can hold (more slots than teams x experimenters) go to
    #: the best-ranked team's extra branches; ``False`` leaves them idle.
    spare_slots_to_best_team: bool = True
    #: How many times a rejected turn may be revised before the team passes.
    max_revisions: int = 2
    #: Seeds the default configuration runs on before teams start (also the first noise sample).
    #: Three give σ two degrees of freedom: the promotion bar is then 19σ instead of 236σ at one,
    #: so the first large step of a run promotes at once instead of after two more seeds of it
    #: (measured on 30 generated tasks: regret at 10 experiments 0.38 instead of 0.56).
    baseline_seeds: int = 3

    # -- budgets (None = unlimited); no budget is ever exceeded -----------------------------
    max_experiments: int | None = 30
    max_device_seconds: float | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    #: Wall-clock deadline as a UNIX time; no experiment starts that could end after it.
    deadline: float | None = None
    #: Stop after this many finished explorations without a keep.
    stop_after_no_keep: int | None = 10
    #: Stop after this many rounds in a row in which no team got a proposal approved. An idle
    #: round re-runs the champion on a new seed instead (a better noise and champion estimate).
    max_idle_rounds: int = 5
    #: Idle rounds repeat the champion only until it has been measured on this many seeds.
    max_champion_seeds: int = 5

    # -- failed agent turns (autosci_graph/lab/retry.py) ------------------------------------------
    #: Stop after this many rounds in a row failed: some organize, propose or critique turn raised
    #: (HTTP error, time-out) or stayed invalid after repair, and no team was formed and no
    #: experiment started. A single failed round never stops the lab.
    max_failed_rounds: int = 5
    #: After failed formations, teams are formed again after 1, 2, 4, ... rounds, at most this many.
    formation_backoff_rounds: int = 8
    #: With no team and nothing in flight after a failed round, wait this long before the next one,
    #: doubling per failed round up to ``retry_wait_max_s`` (a restarting server gets time).
    retry_wait_s: float = 2.0
    retry_wait_max_s: float = 60.0

    # -- promotion by pooled evidence (autosci_graph/lab/promotion.py has the math) ----------
    #: When a candidate replaces the champion: all its seeds against the champion's mean, σ
    #: pooled over every repeated configuration, a fixed bar with a futility stop.
    promotion: PromotionRule = field(default_factory=PromotionRule)
    #: Near the end of an experiment budget the lead's seeds (paired with the champion's) come
    #: before explorations, once the experiments left are what its verdict needs: a lead left
    #: uncertified when the budget ends is a finding the report never shows.
    endgame: bool = True

    # -- team life cycle -------------------------------------------------------------------------
    #: A team is falsified after this many rotations without support AND this many refutes.
    falsify_rotations: int = 3
    falsify_refutes: int = 3
    #: A team runs at least this many experiments before it can be falsified or dissolved by a
    #: regroup: a hypothesis needs a few tests before the lab may call it refuted.
    team_min_life: int = 4
    #: Explorations after a regroup (or the first formation) before another regroup may fire.
    regroup_cooldown: int = 10
    #: Regroup when this many rotations (per team) pass without any keep ...
    regroup_rotations_without_keep: int = 3
    #: ... or when the last ``regroup_discards`` discards fall within ``regroup_axes`` axes.
    regroup_discards: int = 8
    regroup_axes: int = 3
    rules: CritiqueRules = field(default_factory=CritiqueRules)
    #: Similar past failures recalled before each proposal.
    recall_k: int = 5
    #: A human critic after the automatic ones: every proposal a team chose to run waits, with
    #: its diff and reviews, in an ``interrupt()`` of the ``approve`` node until a
    #: ``Command(resume=...)`` approves, rejects (with a reason) or edits it
    #: (:mod:`autosci_graph.graphs.approval`). Needs a checkpointer; freed slots then take no
    #: approved work without a human (``refill_while_thinking`` has no effect).
    human_approval: bool = False

    def __post_init__(self) -> None:
        if self.n_teams < 1:
            raise SettingsError("n_teams must be at least 1")
        if self.max_experiments is not None and self.max_experiments < self.baseline_seeds:
            raise SettingsError(
                f"max_experiments ({self.max_experiments}) must cover the {self.baseline_seeds} baseline runs; raise it"
            )
        if self.baseline_seeds < 1:
            raise SettingsError("baseline_seeds must be at least 1")
        if self.max_failed_rounds < 1:
            raise SettingsError("max_failed_rounds must be at least 1")
        if self.retry_wait_s < 0 or self.retry_wait_max_s < 0:
            raise SettingsError("retry_wait_s and retry_wait_max_s must be >= 0")

    @staticmethod
    def deadline_in(seconds: float) -> float:
        """A deadline ``seconds`` from now, for ``deadline=``."""
        return time.time() + seconds

    @property
    def budget(self) -> Budget:
        """The budget and stop settings, for :mod:`autosci_graph.lab.budget`."""
        return Budget(max_experiments=self.max_experiments, max_device_seconds=self.max_device_seconds,
                      max_tokens=self.max_tokens, max_cost_usd=self.max_cost_usd, deadline=self.deadline,
                      stop_after_no_keep=self.stop_after_no_keep, max_idle_rounds=self.max_idle_rounds)

    @property
    def team_rules(self) -> TeamRules:
        """The team life-cycle settings, for :mod:`autosci_graph.lab.teams`."""
        return TeamRules(falsify_rotations=self.falsify_rotations, falsify_refutes=self.falsify_refutes,
                         team_min_life=self.team_min_life, regroup_cooldown=self.regroup_cooldown,
                         regroup_rotations_without_keep=self.regroup_rotations_without_keep,
                         regroup_discards=self.regroup_discards, regroup_axes=self.regroup_axes,
                         dead_end_discards=self.rules.dead_end_discards, analysts_per_team=self.analysts_per_team,
                         experimenters_per_team=self.experimenters_per_team)

    def roster(self) -> list[str]:
        """Agent names: analysts first, then experimenters."""
        a = [f"analyst-{i + 1}" for i in range(self.n_teams * self.analysts_per_team)]
        e = [f"experimenter-{i + 1}" for i in range(self.n_teams * self.experimenters_per_team)]
        return a + e


@dataclass
class LabContext:
    """Everything a lab run needs besides its state: the task, the services and the settings.

    Example::

        ctx = LabContext(task=load_task("examples/gpt_bpb"), executor=LocalExecutor(task, "runs/x"),
                         scientist=SearchScientist(), memory=ChromaMemory(task="gpt_bpb"))
        graph.invoke({"run_id": "x"}, context=ctx, config={"configurable": {"thread_id": "x"}})
    """

    task: ResearchTask
    executor: "Executor"
    scientist: "Scientist"
    memory: "ExperimentMemory | None" = None
    settings: LabSettings = field(default_factory=LabSettings)
    #: Optional separate critic (e.g. a cheaper model); defaults to ``scientist``.
    critic: "Scientist | None" = None
    #: Seconds ``collect`` waits per poll; a poll returns as soon as any experiment finishes.
    poll_s: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: How a code increment stacks on the champion's code (``lab.changes.Stack``). By default the
    #: task's editable files: the increment is applied tolerantly to the champion's files and the
    #: full change from the original is kept (:func:`autosci_graph.tools.codestate.code_stack`).
    stack: Stack | None = None

    def __post_init__(self) -> None:
        if self.stack is None and self.task.editable:
            from autosci_graph.tools.codestate import code_stack

            self.stack = code_stack(self.task)
    # Configurations claimed by team branches of this process. Parallel branches read the same
    # snapshot, so two teams can approve the same change in one round; they claim in dispatch
    # order (their turn), so which team runs it is a function of the state, never of threads.
    _claims: set[str] = field(default_factory=set, repr=False)
    _claims_lock: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _turn: int = field(default=0, repr=False)
    #: Held while a code change's smoke command runs. Checks cost no slot, but each is a process
    #: beside the slots' experiments: four team branches (2 teams x 2 experimenters) checking at
    #: once on a 2-core machine made experiments 2.5x slower, and a time-budgeted run trains fewer
    #: steps when it is starved. One at a time bounds that at one process.
    smoke_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: What the thinking branches of the current dispatch post for ``tend`` while they still
    #: think (:mod:`autosci_graph.graphs.board`). In memory only.
    board: RoundBoard = field(default_factory=RoundBoard, repr=False)

    @property
    def refills(self) -> bool:
        """Whether freed slots take approved work at once (:mod:`autosci_graph.graphs.refill`).
        Never with a synchronous executor: it finishes each run inside ``submit``, so no slot is
        ever busy while teams think and there is nothing to refill. Never under human approval:
        every proposal that runs waits for its verdict in ``approve``, approved work included."""
        return self.settings.refill_while_thinking and not self.executor.synchronous and not self.settings.human_approval

    @property
    def reviewer(self) -> "Scientist":
        return self.critic or self.scientist

    def clear_claims(self) -> None:
        """Forget the claims of the previous dispatch (claims only guard one round of branches)."""
        with self._claims_lock:
            self._claims.clear()
            self._turn = 0

    @contextmanager
    def turn(self, turn: int, timeout: float = TURN_TIMEOUT_S) -> Iterator[None]:
        """Hold the claims in dispatch order: branch ``turn`` enters after every earlier branch
        of the round has claimed or passed. A branch that never gets there (an error) holds the
        others back at most ``timeout`` seconds.

        Only with a synchronous executor (no refills): there every run finishes inside ``submit``
        and the order is what makes the round's claims a function of the state. When runs outlive
        ``submit``, a branch that is done thinking claims at once: waiting for a slower team's
        turn would idle the slot it holds (issue 11: thinking never blocks dispatch). Of two
        branches that approved the same configuration in one round, the first to finish runs it;
        the other runs its next approved proposal, and the state records which did."""
        if self.refills:
            yield
            return
        deadline = time.monotonic() + timeout
        with self._claims_lock:
            while self._turn < turn and time.monotonic() < deadline:
                self._claims_lock.wait(max(0.0, deadline - time.monotonic()))
        try:
            yield
        finally:
            with self._claims_lock:
                self._turn = max(self._turn, turn + 1)
                self._claims_lock.notify_all()

    @property
    def thinking(self) -> int:
        """Team branches of this dispatch that have not ended yet."""
        return self.board.thinking

    def claim(self, config_key: str) -> bool:
        """Claim a configuration for this branch; ``False`` if another branch already did."""
        with self._claims_lock:
            if config_key in self._claims:
                return False
            self._claims.add(config_key)
            return True


def emit(event: dict[str, Any]) -> None:
    """Progress for callers streaming with ``stream_mode="custom"`` (a no-op otherwise): the
    lab and the single agent report the same events, so both print the same live lines."""
    try:
        get_stream_writer()(event)
    except RuntimeError:
        pass  # called outside a graph run (unit tests of a node)
