"""The round's board: what ``tend`` learns from the thinking branches while they still think.

LangGraph applies a superstep's writes only when every task of it has finished, so what a team
branch approves is invisible to ``tend`` (its sibling in the superstep) until the slowest branch is
done. The board is the in-memory side channel between them, held by the :class:`LabContext`:

* a branch **posts** what it approved and did not run (its approved work) and the run it started,
  the moment its turn ends, then says it is **done**;
* ``tend`` **takes** the posts, gives freed slots the posted work at once, watches the posted runs
  as it watches the others, and returns when no branch is left thinking.

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
    #: Turns of the branches that ended since (run branches among them free their reserved slot).
    done: list[int] = field(default_factory=list)


class RoundBoard:
    """Thread-safe; one per :class:`~autosci_graph.graphs.context.LabContext`, reset per dispatch."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._thinking: set[int] = set()
        self._posts = Posts()

    def begin(self, turns: int) -> None:
        """A dispatch starts branches ``0 .. turns - 1``: each thinks until it says :meth:`done`."""
        with self._cond:
            self._thinking = set(range(turns))
            self._posts = Posts()
            self._cond.notify_all()

    def post(self, *, queued: Sequence[dict[str, Any]] = (), started: Sequence[dict[str, Any]] = ()) -> None:
        with self._cond:
            self._posts.queued.extend(queued)
            self._posts.started.extend(started)
            self._cond.notify_all()

    def done(self, turn: int) -> None:
        """Branch ``turn`` has ended (submitted, passed, or failed): it posts nothing more."""
        with self._cond:
            if turn in self._thinking:
                self._thinking.discard(turn)
                self._posts.done.append(turn)
            self._cond.notify_all()

    @property
    def thinking(self) -> int:
        """Branches of this dispatch that have not ended yet."""
        with self._cond:
            return len(self._thinking)

    def take(self) -> Posts:
        """Everything posted since the last take."""
        with self._cond:
            posts, self._posts = self._posts, Posts()
            return posts

    def wait(self, timeout: float) -> None:
        """Until something is posted or a branch ends, at most ``timeout`` seconds."""
        with self._cond:
            if self._thinking and not (self._posts.queued or self._posts.started or self._posts.done):
                self._cond.wait(timeout)
