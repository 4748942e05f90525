"""Candidates outlive champion moves: a pending candidate is its *direction*, rebased.

When the champion changes, a candidate still under test was measured against a champion that no
longer is. Judging it against the new one would compare runs that never ran with it; dropping it
loses a direction that may still be good. Instead its direction (knob overrides, code increment)
is re-expressed on the new champion and measured again, its old evidence kept as a prior. It is
*moot*, and stops, when the new champion moved the same knobs (the question it asked is answered)
or already contains the change.
"""

from __future__ import annotations

from collections.abc import Iterable

from autosci_graph.lab.lead import apply_direction, candidate_of, direction
from autosci_graph.lab.changes import Stack, StackingError, champion_key, change_key, changed_axes
from autosci_graph.state import Candidate, Champion, Change, Submission
from autosci_graph.task import ResearchTask


def rebased_change(task: ResearchTask, candidate: Candidate, old: Champion, new: Champion,
                   stack: Stack | None = None, since: Candidate | None = None) -> tuple[Change | None, str]:
    """The candidate's direction on the new champion, or ``None`` and why it is moot. ``since``:
    an ancestor lead the new champion also descends from; the direction then starts there, and
    the new champion's moves are counted from there too (the ancestor's are shared, not rival)."""
    knobs, increments = direction(candidate, since)
    moved = changed_axes(since.change.knobs if since is not None else old.config, new.config)
    overlap = sorted(moved & set(knobs))
    if overlap:
        return None, f"moot: the new champion moved {', '.join(overlap)} itself"
    if increments and (new.diff or "") != (old.diff or "") and stack is None:
        return None, "moot: its code increment cannot be re-applied here"
    try:
        change = apply_direction(new, knobs, increments, stack=stack, description=candidate.proposal.change.description)
    except StackingError as exc:
        return None, f"moot: its code increment does not apply to the new champion ({exc})"
    if change_key(task, change) == champion_key(task, new):
        return None, "moot: the new champion already contains this change"
    return change, f"rebased on the new champion ({new.experiment_id})"


def next_seed(task_seeds: tuple[int, ...] | list[int], used: set[int], prefer: list[int]) -> int:
    """A seed not in ``used``: first from ``prefer`` (seeds the other side of the comparison ran,
    so the runs are paired), then the task's seeds, then counting up."""
    for s in list(prefer) + list(task_seeds):
        if s not in used:
            return s
    return max(used | {0}) + 1


def next_confirmation(cand: Candidate, submitted: Iterable[Submission], champion: Champion,
                      task_seeds: tuple[int, ...] | list[int]) -> Submission:
    """The candidate's next seed as a submission: on a seed the champion ran and the candidate
    has not (paired), with the proposal that opened it."""
    family = [x for x in submitted if candidate_of(x) == cand.candidate_id]
    seed = next_seed(task_seeds, {x.seed for x in family}, prefer=list(champion.seeds))
    proposal = family[0].proposal if family else cand.proposal
    return Submission(experiment_id=f"{cand.candidate_id}-c{len(family)}", proposal=proposal, seed=seed, kind="confirm",
                      candidate_of=cand.candidate_id, change=cand.change, base_metric=champion.metric)
