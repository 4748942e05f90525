"""Thinking that never waits on thinking: a turn's critiques at once, and a branch that drafts
again while a slower branch of its round still thinks (autosci_graph/graphs/acts.py, board.py,
lab.py). Real graph, real SearchScientist, FunctionExecutor; every wait is on an event, never a clock."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from lab_helpers import make_synth_task, run_lab, synth_loss

from autosci_graph.graphs.acts import Act, Together, adrive, drive
from autosci_graph.graphs.board import RoundBoard
from autosci_graph.graphs.context import LabSettings
from autosci_graph.scientists.base import CritiqueReply, LabView, ProposeReply, RecalledMemory, ReviewDraft
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Change, Proposal

TASK = make_synth_task()


class Pair:
    """Two calls that can only both return when they run at the same time (a barrier of two)."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=10.0)
        self.abarrier = asyncio.Barrier(2)

    def critique(self, name: str) -> str:
        self.barrier.wait()  # sequential calls break it: BrokenBarrierError after the timeout
        if name == "bad":
            raise ValueError("bad critique")
        return name

    async def acritique(self, name: str) -> str:
        await asyncio.wait_for(self.abarrier.wait(), 10.0)
        if name == "bad":
            raise ValueError("bad critique")
        return name


def _steps(pair: Pair, names: list[str]) -> Any:
    answers = yield Together(tuple(Act(pair, "critique", {"name": n}) for n in names))
    return answers


def test_together_runs_its_calls_at_once_and_answers_in_their_order() -> None:
    answers = drive(_steps(Pair(), ["a", "bad"]))
    assert answers[0] == "a"
    assert isinstance(answers[1], ValueError)  # the failing call's exception, in its place


def test_together_on_the_async_path_awaits_its_calls_at_once() -> None:
    answers = asyncio.run(adrive(_steps(Pair(), ["bad", "b"])))
    assert isinstance(answers[0], ValueError) and answers[1] == "b"


class OverlapCritic(SearchScientist):
    """Approves everything; each critique waits (up to 10 s) for the other critique of its turn
    to start, and records whether it came: sequential critiques of one turn never meet."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Condition()
        self.entered: dict[str, int] = {}
        self.met: dict[str, bool] = {}

    def critique(self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> CritiqueReply:
        turn = proposal.proposal_id.rsplit("-", 1)[0]  # ...-v<rev>-<i>: one turn's proposals share it
        with self.lock:
            self.entered[turn] = self.entered.get(turn, 0) + 1
            self.lock.notify_all()
            met = self.lock.wait_for(lambda: self.entered[turn] >= 2, timeout=10.0)
            self.met.setdefault(turn, met)
        return CritiqueReply(review=ReviewDraft(approve=True, reason="scripted: approve"))


def test_the_critiques_of_one_turn_run_at_once() -> None:
    sci = OverlapCritic()
    settings = LabSettings(n_teams=2, experimenters_per_team=1, max_experiments=8, stop_after_no_keep=None)
    run_lab(TASK, synth_loss(), sci, settings, slots=2)
    pairs = [t for t, n in sci.entered.items() if n >= 2]
    assert pairs, "no turn had two proposals for its critic"
    assert all(sci.met[t] for t in pairs), "a turn's second critique started only after its first ended"


def test_the_board_lets_a_branch_draft_again_only_while_another_is_in_its_first_turn() -> None:
    board = RoundBoard()
    board.begin(2)
    board.turn_ended(0)
    assert board.another_turn(0, slots=2, turns_left=None)  # branch 1 still thinks its first turn
    board.waiting(2)
    assert not board.another_turn(0, slots=2, turns_left=None)  # enough approved work waits
    board.waiting(0)
    assert not board.another_turn(0, slots=2, turns_left=2)  # 2 thinking + 1 extra already: budget spent
    assert board.another_turn(0, slots=2, turns_left=4)
    board.turn_ended(1)
    assert not board.another_turn(0, slots=2, turns_left=None)  # nobody left in a first turn


def test_tend_takes_only_the_slot_of_a_run_branch_that_has_not_committed_to_its_run() -> None:
    board = RoundBoard()
    board.begin(3, reserved=2)  # branches 0 and 1 are run branches, 2 thinks ahead
    assert board.take().reserved == 2
    assert board.keep_slot(1)  # branch 1 commits to its run: its slot is no longer for the taking
    assert board.take_reservation()  # branch 0's slot goes to approved work
    assert not board.take_reservation()  # nothing else to take: 1 committed, 2 never had a slot
    assert board.take().reserved == 1
    assert not board.keep_slot(0)  # branch 0 then finds its slot gone and thinks ahead instead
    board.post(started=[{"experiment_id": "e1"}], turn=1)  # branch 1's run now holds its slot
    assert board.take().reserved == 0


class StuckTeamScientist(SearchScientist):
    """Team t1 is stuck in its first proposal after the baseline until team t2 has proposed
    twice meanwhile (or 30 s pass: ``gave_up``); every critique approves."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.stuck = threading.Event()
        self.gave_up = False
        self.while_stuck: list[LabView] = []

    def propose(self, view: LabView, **kwargs: Any) -> Any:
        team = kwargs["team"].team_id
        if team == "t1" and not self.release.is_set():
            if view.champion.metric is None:
                return ProposeReply()
            self.stuck.set()
            self.gave_up = not self.release.wait(30.0)
            self.release.set()
        reply = super().propose(view, **kwargs)
        if team == "t2" and self.stuck.is_set() and not self.release.is_set():
            self.while_stuck.append(view)
            if len(self.while_stuck) >= 2:
                self.release.set()
        return reply

    def critique(self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> CritiqueReply:
        return CritiqueReply(review=ReviewDraft(approve=True, reason="scripted: approve"))


def test_a_branch_drafts_again_while_a_slower_branch_still_thinks() -> None:
    # Two teams on three slots: t2's turn ends while t1 is stuck in its first turn of the
    # round, and too little approved work waits for the slots that free meanwhile, so t2 thinks
    # ahead again, below what it drafted, with its drafts shown as in flight.
    sci = StuckTeamScientist()

    def run(change: Change, seed: int) -> float:
        threading.Event().wait(0.2)
        return synth_loss()(change, seed)

    settings = LabSettings(n_teams=2, experimenters_per_team=1, max_experiments=12, stop_after_no_keep=None)
    final, _ = run_lab(TASK, run, sci, settings, slots=3)
    assert not sci.gave_up, "t2 did not draft again while t1 was stuck"
    first, again = sci.while_stuck[0], sci.while_stuck[1]
    assert again.siblings_drafting > first.siblings_drafting
    assert len(again.in_flight) > len(first.in_flight)  # its own earlier drafts, shown as in flight
    reviewed = [r["proposal_id"] for r in final["reviews"]]
    assert len(reviewed) == len(set(reviewed))  # the extra turns' proposals have ids of their own
    assert any("x1-" in p for p in reviewed)  # and went through critique like any other
