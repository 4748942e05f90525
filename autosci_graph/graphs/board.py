"""The round's board: what ``tend`` learns from the thinking branches while they still think.

LangGraph applies a superstep's writes only when every task of it has finished, so what a team
branch approves is invisible to ``tend`` (its sibling in the superstep) until the slowest branch is
done. The board is the in-memory side channel between them, held by the :class:`LabContext`:

* a branch **posts** what it approved and did not run (its approved work) and the run it started,
  the moment its turn ends, then says it is **done**;
* ``tend`` **takes** the posts, gives freed slots the posted work at once, watches the posted runs
  as it watches the others, and returns when no branch is left thinking;
* a run branch's slot is **reserved** for it until it starts its run or its turn ends; with
  approved work waiting and no slot free, ``tend`` may **take** the reservation of a run branch
  that has not committed to its run yet, and that branch's approved work waits instead;
* a branch whose turn ended asks for **another turn** (thinking ahead) while another branch is
  still in its first turn and too little approved work waits (``tend`` tells the board how much).

Nothing on the board is state: every branch also writes the same records to the lab state, and
``tend`` writes what it ran, so the checkpoint holds everything that happened. After a resume the
board starts empty and no branch counts as thinking: ``tend`` then gives slots only the approved
work already in the state (a slower round, never a wrong one).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Posts:
    """What the branches posted since ``tend`` last took: approved work (queue entries, as the
    lab state's ``queued`` holds them) and the runs they started (Submission dicts)."""

    queued: list[dict[str, Any]] = field(default_factory=list)
    started: list[dict[str, Any]] = field(default_factory=list)
    #: Turns of the branches that ended since.
    done: list[int] = field(default_factory=list)
    #: Run branches holding a reserved slot at the time of the take (run not started, turn not
    #: over): those slots are not free.
    reserved: int = 0


class RoundBoard:
    """Thread-safe; one per :class:`~autosci_graph.graphs.context.LabContext`, reset per dispatch."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._thinking: set[int] = set()
        #: Branches still in their first turn: the round waits for them whatever else happens.
        self._first_turn: set[int] = set()
        #: Turns taken beyond each branch's first (:meth:`another_turn`), and the approved work
        #: waiting for a slot as ``tend`` last counted it.
        self._extra_turns = 0
        self._waiting = 0
        #: Run branches' slots: reserved until the branch starts its run or its turn ends; a
        #: branch that commits to its run keeps it, one whose slot ``tend`` took thinks ahead.
        self._reserved: set[int] = set()
        self._committed: set[int] = set()
        self._taken: set[int] = set()
        self._posts = Posts()

    def begin(self, turns: int, reserved: int = 0) -> None:
        """A dispatch starts branches ``0 .. turns - 1``: each thinks until it says :meth:`done`;
        the first ``reserved`` are run branches, a slot held for each."""
        with self._cond:
            self._reserved = set(range(reserved))
            self._committed, self._taken = set(), set()
            self._thinking = set(range(turns))
            self._first_turn = set(range(turns))
            self._extra_turns = 0
            self._waiting = 0
            self._posts = Posts()
            self._cond.notify_all()

    def post(self, *, queued: Sequence[dict[str, Any]] = (), started: Sequence[dict[str, Any]] = (),
             turn: int | None = None) -> None:
        """Approved work and started runs; the run branch ``turn`` that started one gives up its
        reservation in the same step (its run now holds the slot)."""
        with self._cond:
            if turn is not None:
                self._reserved.discard(turn)
            self._posts.queued.extend(queued)
            self._posts.started.extend(started)
            self._cond.notify_all()

    def done(self, turn: int) -> None:
        """Branch ``turn`` has ended (submitted, passed, or failed): it posts nothing more."""
        with self._cond:
            self._first_turn.discard(turn)
            self._reserved.discard(turn)
            if turn in self._thinking:
                self._thinking.discard(turn)
                self._posts.done.append(turn)
            self._cond.notify_all()

    @property
    def thinking(self) -> int:
        """Branches of this dispatch that have not ended yet."""
        with self._cond:
            return len(self._thinking)

    def turn_ended(self, turn: int) -> None:
        """Branch ``turn`` ended its first turn; it may think on (:meth:`another_turn`)."""
        with self._cond:
            self._first_turn.discard(turn)
            self._reserved.discard(turn)

    def waiting(self, count: int) -> None:
        """``tend``: this many approved entries wait for a slot now."""
        with self._cond:
            self._waiting = count

    def another_turn(self, turn: int, *, slots: int, turns_left: int | None) -> bool:
        """Whether branch ``turn``, its turn over, drafts again: while another branch of the
        round is still in its first turn (the round lasts that long anyway), fewer approved
        entries wait than there are ``slots`` (the next slots to free would idle), and the LLM
        budget covers the extra turn (``turns_left``: ``None`` when unlimited). Counted when yes."""
        with self._cond:
            if not self._first_turn - {turn} or self._waiting >= slots:
                return False
            if turns_left is not None and turns_left <= len(self._thinking) + self._extra_turns:
                return False
            self._extra_turns += 1
            return True

    def keep_slot(self, turn: int) -> bool:
        """Run branch ``turn``, about to start its run: ``False`` when ``tend`` gave its slot to
        approved work meanwhile (it then thinks ahead); else its slot stays its own."""
        with self._cond:
            if turn in self._taken:
                return False
            self._committed.add(turn)
            return True

    def take_reservation(self) -> bool:
        """``tend``, with approved work and no free slot: take the slot of a run branch that has
        not committed to its run yet (the last dispatched), if any."""
        with self._cond:
            open_ = sorted(self._reserved - self._committed)
            if not open_:
                return False
            self._reserved.discard(open_[-1])
            self._taken.add(open_[-1])
            return True

    def take(self) -> Posts:
        """Everything posted since the last take, and the reservations still held."""
        with self._cond:
            posts, self._posts = self._posts, Posts()
            posts.reserved = len(self._reserved)
            return posts

    def wait(self, timeout: float) -> None:
        """Until something is posted or a branch ends, at most ``timeout`` seconds."""
        with self._cond:
            if self._thinking and not (self._posts.queued or self._posts.started or self._posts.done):
                self._cond.wait(timeout)
