"""The automatic critique rules: proposals rejected before any agent spends thought on them.

Pure functions of the proposal and the shared state, so the graph, every scientist and the tests
apply exactly the same rules. Thresholds default to the authors' (METHOD-NOTES.md) and are settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from autosci_graph.scientists.base import LabView, RecalledMemory
from autosci_graph.scientists.knowledge import change_key
from autosci_graph.state import Change, ExperimentEntry, Proposal, Review
from autosci_graph.task import KnobValue, ResearchTask


@dataclass(frozen=True)
class CritiqueRules:
    """Thresholds of the automatic rejections."""

    #: How many recent experiments count as "recently" for the repeat rule.
    recent_window: int = 10
    #: An axis+direction proposed this many times recently is over-mined.
    max_recent_repeats: int = 3
    #: A family (axis+direction) with this many discards and no keep is a dead end.
    dead_end_discards: int = 3
    #: Recalled memories at least this similar count as "a similar failure in memory".
    similar_failure_score: float = 0.80


def refutes(entry: ExperimentEntry) -> bool:
    """A crash, or a discard that measured no gain. A discarded noise-level gain is not evidence
    against its direction, so it neither builds a dead end nor refutes a hypothesis."""
    return entry.outcome == "crash" or (entry.outcome == "discard" and (entry.gain is None or entry.gain <= 0))


def _reject(p: Proposal, rule: str, reason: str) -> Review:
    return Review(proposal_id=p.proposal_id, reviewer="rules", approve=False, reason=reason, rule=rule)


def _numeric(v: KnobValue | None) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def _inside_failed_range(direction: str | None, new: float, champ: float, failed: float) -> bool:
    """A move is inside a failed range when it goes at least as far, the same way, as a failure."""
    if direction == "increase" or (direction is None and new > champ):
        return failed > champ and new >= failed
    if direction == "decrease" or (direction is None and new < champ):
        return failed < champ and new <= failed
    return new == failed


def auto_review(
    proposal: Proposal,
    view: LabView,
    recalled: list[RecalledMemory] | None = None,
    rules: CritiqueRules = CritiqueRules(),
) -> Review | None:
    """The first automatic rejection that applies, or ``None`` if the proposal may go to a critic."""
    task: ResearchTask = view.task
    p = proposal
    if not p.axis or not p.direction:
        return _reject(p, "missing_tags", "Proposal lacks axis/direction tags; tag it (e.g. axis=lr, direction=increase).")
    if p.change.is_empty():
        return _reject(p, "empty_change", "Proposal changes nothing; give knob overrides or a diff.")
    try:
        task.validate_overrides(dict(p.change.knobs))
    except ValueError as exc:
        return _reject(p, "invalid_knob", f"Change is outside the task's search space: {exc}.")

    candidate = Change(knobs={**view.champion.config, **p.change.knobs}, diff=p.change.diff or view.champion.diff)
    key = change_key(task, candidate)
    if key == change_key(task, Change(knobs=dict(view.champion.config), diff=view.champion.diff)):
        # Restating the champion's own values would re-run the champion as an "exploration".
        return _reject(p, "empty_change", "Proposal restates the champion's configuration; change at least one value.")
    for e in view.experiments:
        if e.result.status != "bad_change" and change_key(task, e.result.change) == key and e.kind == "explore":
            return _reject(p, "duplicate", f"This exact configuration already ran as {e.result.experiment_id} (outcome {e.outcome}).")
    for q in view.in_flight:
        if change_key(task, Change(knobs={**view.champion.config, **q.change.knobs}, diff=q.change.diff)) == key:
            return _reject(p, "duplicate", f"This exact configuration is already queued as {q.proposal_id}.")

    family = (p.axis, p.direction)
    # "Recently" counts every experiment, so repeat runs of the champion also let a family cool down.
    recent = [e.proposal for e in view.experiments[-rules.recent_window :] if e.kind == "explore"] + list(view.in_flight)
    repeats = sum(1 for q in recent if (q.axis, q.direction) == family)
    if repeats >= rules.max_recent_repeats:
        return _reject(
            p, "over_mined",
            f"{p.axis}/{p.direction} was proposed {repeats} times in the last {rules.recent_window} experiments; try another axis.",
        )

    # A new champion is a new base point: families are judged on what happened since it was kept.
    since = max((e.index for e in view.experiments if e.outcome == "keep" and e.kind in ("explore", "confirm")), default=-1)
    fam_entries = [e for e in view.experiments
                   if (e.proposal.axis, e.proposal.direction) == family and e.kind == "explore" and e.index > since]
    discards = sum(1 for e in fam_entries if refutes(e))
    keeps = sum(1 for e in fam_entries if e.outcome == "keep")
    if discards >= rules.dead_end_discards and keeps == 0:
        return _reject(p, "dead_end", f"{p.axis}/{p.direction} has {discards} discards and no keep: a dead end.")

    if not p.what_is_different.strip():
        hit = _failed_range_hit(p, view, recalled or [], rules)
        if hit:
            return _reject(p, "failed_range", hit + " Say what is different (what_is_different) or choose another value.")
    return None


def _failed_range_hit(p: Proposal, view: LabView, recalled: list[RecalledMemory], rules: CritiqueRules) -> str | None:
    """Whether the proposal moves into a range where a recorded run already failed."""
    axis = p.axis or ""
    new = _numeric(p.change.knobs.get(axis))
    champ = _numeric(view.champion.config.get(axis))
    for d in view.dead_ends:
        if d.axis != axis:
            continue
        failed = _numeric(d.value)
        if new is not None and champ is not None and failed is not None:
            if _inside_failed_range(p.direction, new, champ, failed):
                return f"{axis}={p.change.knobs[axis]} lies inside the failed range of {d.experiment_id} ({axis}={d.value}: {d.reason})."
        elif d.value is not None and p.change.knobs.get(axis) == d.value:
            return f"{axis}={d.value} already failed in {d.experiment_id} ({d.reason})."
    for m in recalled:
        if m.score < rules.similar_failure_score or m.outcome == "keep" or m.axis != axis:
            continue
        failed = _numeric(m.knobs.get(axis))
        if new is not None and champ is not None and failed is not None and _inside_failed_range(p.direction, new, champ, failed):
            return f"Memory holds a similar failure, {m.experiment_id} ({axis}={m.knobs.get(axis)}, {m.status or m.outcome})."
    return None
