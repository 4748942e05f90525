"""Failed agent turns and rounds: when a round counts as failed, when formation is retried, when to give up.

A model answers slowly and partly wrong: one bad answer (prose, a wrong schema, HTTP 500, a
time-out) must not stop a long run. A failed turn is data (:class:`TurnFailure`); the lab goes on
with the teams it has and stops only after ``max_failed_rounds`` failed rounds in a row.

A *round* is one pass of organize → team branches → collect. It

* **progressed** when it formed a team or started an exploration: the failure count resets;
* **failed** when some agent turn failed and it did not progress: the count grows;
* is **neutral** otherwise (nothing was asked, e.g. every team was busy): the count stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from autosci_graph.state import Record

#: ``error``: the call raised (HTTP error, unreachable server, time-out); ``invalid``: every answer
#: was still invalid after repair, so nothing usable came back.
FailureKind = Literal["error", "invalid"]
Role = Literal["organize", "propose", "critique"]


class TurnFailure(Record):
    """One agent turn that gave the lab nothing usable."""

    role: Role
    kind: FailureKind
    #: The round (the lab's ``rotation``) it happened in.
    rotation: int
    reason: str
    agent: str = ""
    team: str = ""


def round_outcome(failures: Sequence[TurnFailure], *, progressed: bool) -> Literal["progressed", "failed", "neutral"]:
    """What one round counts as (see the module's docstring)."""
    if progressed:
        return "progressed"
    return "failed" if failures else "neutral"


def failed_rounds_after(previous: int, outcome: Literal["progressed", "failed", "neutral"]) -> int:
    """The count of failed rounds in a row after a round with ``outcome``."""
    if outcome == "progressed":
        return 0
    return previous + 1 if outcome == "failed" else previous


def formation_delay(failures_in_a_row: int, cap: int) -> int:
    """Rounds to wait before forming teams again after ``failures_in_a_row`` failed formations:
    1, 2, 4, ... up to ``cap``. Exponential, so a model that cannot organize costs few calls while
    the teams the lab has keep working; capped, so a server that recovers is used again soon."""
    if failures_in_a_row <= 0:
        return 0
    return max(1, min(cap, 2 ** (failures_in_a_row - 1)))


def retry_wait_s(failed_rounds: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait before a round when the last ``failed_rounds`` rounds failed and the lab has
    nothing else to do (no team, nothing in flight): base, 2 × base, 4 × base, ... up to ``cap_s``.
    A server that is restarting or overloaded gets time to recover instead of a burst of calls."""
    if failed_rounds <= 0 or base_s <= 0:
        return 0.0
    return float(min(cap_s, base_s * 2 ** (failed_rounds - 1)))


def give_up_reason(failed_rounds: int, limit: int, last: TurnFailure | None) -> str | None:
    """The stop message after ``failed_rounds`` failed rounds in a row, or ``None`` to go on."""
    if failed_rounds < limit:
        return None
    what = f"; the last: {last.role} {last.kind}: {last.reason[:300]}" if last is not None else ""
    return (f"{failed_rounds} rounds in a row failed: no agent turn gave a usable answer{what}. "
            "Check that the model server answers (its URL, the model name) and follows the JSON schema, "
            "or raise max_failed_rounds / call_timeout_s")
