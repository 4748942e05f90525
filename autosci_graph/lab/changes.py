"""The change to run: the one place a champion and a proposal's direction become a concrete change.

A champion is a configuration *and* a code state: ``champion.diff`` is the full change of the
task's editable files from the original, every accepted code change applied. A proposal carries a
*direction*: knob overrides and, optionally, a code increment written against the champion's
files. The change to run is the champion with the direction applied; code increments stack
through ``stack`` (supplied by the caller, since applying a diff reads files and this package
does no I/O).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping

from autosci_graph.state import Champion, Change
from autosci_graph.task import KnobValue, ResearchTask

#: ``stack(champion_diff, increment) -> full diff from the original``; raises ``ValueError`` (a
#: ``DiffError``) when the increment does not apply to the champion's files.
Stack = Callable[[str | None, str], str]


class StackingError(ValueError):
    """A code increment cannot be stacked on the champion's code."""


def config_key(knobs: Mapping[str, KnobValue], diff: str | None = None) -> str:
    """A stable key for a full configuration, so repeat runs of one config can be grouped."""
    payload = json.dumps({"knobs": {k: knobs[k] for k in sorted(knobs)}, "diff": (diff or "").strip()}, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def full_config(task: ResearchTask, change: Change) -> dict[str, KnobValue]:
    """The complete knob configuration a change runs with (task defaults + overrides)."""
    return {**task.default_config(), **change.knobs}


def change_key(task: ResearchTask, change: Change) -> str:
    return config_key(full_config(task, change), change.diff)


def context_key(task: ResearchTask, change: Change, axis: str | None) -> str:
    """Where a change moves ``axis`` from: the key of its full configuration without that knob
    (every other knob, and the code)."""
    return config_key({k: v for k, v in full_config(task, change).items() if k != axis}, change.diff)


def champion_change(champion: Champion, description: str = "") -> Change:
    """The champion itself as a change (for repeats on new seeds)."""
    return Change(knobs=dict(champion.config), diff=champion.diff, description=description or champion.description)


def champion_key(task: ResearchTask, champion: Champion) -> str:
    return change_key(task, champion_change(champion))


def has_code(change: Change) -> bool:
    return bool(change.diff and change.diff.strip())


def change_to_run(champion: Champion, direction: Change, *, stack: Stack | None = None, description: str = "") -> Change:
    """The champion with ``direction`` applied: its knobs override the champion's, and its code
    increment stacks on the champion's code (never replacing it)."""
    knobs = {**champion.config, **direction.knobs}
    diff = champion.diff if has_code(Change(diff=champion.diff)) else None
    if has_code(direction):
        if stack is None:
            if diff:
                raise StackingError("a code increment on a champion with code changes needs a stack function")
            diff = direction.diff
        else:
            try:
                diff = stack(diff, direction.diff or "") or None
            except ValueError as exc:
                raise StackingError(str(exc)) from exc
    return Change(knobs=knobs, diff=diff, description=description or direction.description)


def changed_axes(before: Mapping[str, KnobValue], after: Mapping[str, KnobValue]) -> set[str]:
    """Knobs whose value differs between two configurations."""
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
