"""The automatic critique rules: proposals rejected before any agent spends thought on them.

Pure functions of the proposal and the shared state, so the graph, every scientist and the tests
apply exactly the same rules. Thresholds default to the authors' (METHOD-NOTES.md) and are settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from autosci_graph.agent_records import LabView, RecalledMemory
from autosci_graph.lab.changes import StackingError, champion_key, change_key, change_to_run, context_key
from autosci_graph.state import Change, ExperimentEntry, Proposal, Review
from autosci_graph.task import CategoricalKnob, KnobValue, ResearchTask, unit


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
    #: A move tagged bold must step at least this fraction of its knob's (log) range (2x of a
    #: learning rate over 2.5 decades is 12%).
    bold_min_step: float = 0.1
    #: A run that measured worse marks its failed range only where every other knob and the code
    #: are as they were when it lost (``DeadEnd.context``); crashes mark it everywhere. Off by
    #: default: on 40 generated tasks it was neutral within noise (paired regret ratio 1.11 at 40
    #: experiments, 0.85 at 20), and it changes which runs a lab makes.
    local_failed_ranges: bool = False


def refutes(entry: ExperimentEntry) -> bool:
    """A crash, or a discard that measured no gain. A discarded noise-level gain is not evidence
    against its direction, so it neither builds a dead end nor refutes a hypothesis."""
    return entry.outcome == "crash" or (entry.outcome == "discard" and (entry.gain is None or entry.gain <= 0))


def unit_step(task: ResearchTask, champion: dict[str, KnobValue], knobs: dict[str, KnobValue], axis: str | None) -> float | None:
    """How far ``axis`` moves, as a fraction of its (log) range; 1.0 for a categorical switch;
    ``None`` when the proposal does not set it."""
    knob = task.knobs.get(axis or "")
    if knob is None or axis not in knobs:
        return None
    if isinstance(knob, CategoricalKnob):
        return 1.0 if knobs[axis] != champion.get(axis, knob.default) else 0.0
    return abs(unit(knob, knobs[axis]) - unit(knob, champion.get(axis, knob.default)))


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
    candidate: Change | None = None,
) -> Review | None:
    """The first automatic rejection that applies, or ``None`` if the proposal may go to a critic.
    ``candidate`` is the full change it would run (the champion's code with its increment stacked),
    when the caller has built it."""
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

    if candidate is None:
        try:
            candidate = change_to_run(view.champion, p.change)
        except StackingError:
            candidate = Change(knobs={**view.champion.config, **p.change.knobs}, diff=p.change.diff)
    key = change_key(task, candidate)
    if key == champion_key(task, view.champion):
        # Restating the champion's own values would re-run the champion as an "exploration".
        return _reject(p, "empty_change", "Proposal restates the champion's configuration; change at least one value.")
    for e in view.experiments:
        # Any measured run counts, the default configuration's baseline runs included: an exact
        # repeat only buys another seed of a known result, which the promotion rule asks for itself.
        if e.result.status != "bad_change" and change_key(task, e.result.change) == key:
            return _reject(p, "duplicate", f"This exact configuration already ran as {e.result.experiment_id} "
                                           f"({e.kind}, outcome {e.outcome}); propose a different value.")
    for q in view.in_flight:
        if change_key(task, Change(knobs={**view.champion.config, **q.change.knobs}, diff=q.change.diff)) == key:
            return _reject(p, "duplicate", f"This exact configuration is already queued as {q.proposal_id}.")
    team = next((t for t in view.teams if t.team_id == p.team), None)
    claimed = team.hypothesis.directions.get(p.axis) if team is not None else None
    if claimed in ("increase", "decrease") and p.direction in ("increase", "decrease") and p.direction != claimed \
            and not p.falsification_test:
        return _reject(p, "contradicts_hypothesis",
                       f"Team {p.team}'s hypothesis claims {p.axis} should {claimed}; this proposal goes the other way. "
                       "Tag it as a falsification test (falsification_test=true) if that is the point.")
    step = unit_step(task, view.champion.config, p.change.knobs, p.axis)
    if p.bold and step is not None and step < rules.bold_min_step:
        return _reject(p, "bold_too_small",
                       f"Tagged bold, but {p.axis} moves {step:.0%} of its range (bold needs {rules.bold_min_step:.0%}); "
                       "take a bigger step or drop the bold tag.")

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
        # The context is a hash of the whole configuration: only worth computing when it is read
        # (the offline scientist screens every draft through these rules).
        context = context_key(task, candidate, p.axis) if rules.local_failed_ranges else None
        hit = _failed_range_hit(p, view, recalled or [], rules, context)
        if hit:
            return _reject(p, "failed_range", hit + " Say what is different (what_is_different) or choose another value.")
    return None


def _failed_range_hit(p: Proposal, view: LabView, recalled: list[RecalledMemory], rules: CritiqueRules,
                      context: str | None) -> str | None:
    """Whether the proposal moves into a range where a recorded run already failed. With
    ``rules.local_failed_ranges``, a run that measured worse marks its range only where every
    other knob and the code are as they were then (``context``): once the base moved, the same
    value is a new question, which the single agent asks too. A crash marks it everywhere:
    divergence and out-of-memory rarely depend on the rest of the configuration, and each costs
    a whole run."""
    axis = p.axis or ""
    new = _numeric(p.change.knobs.get(axis))
    champ = _numeric(view.champion.config.get(axis))
    for d in view.dead_ends:
        local = rules.local_failed_ranges and d.outcome == "discard" and d.context is not None
        if d.axis != axis or (local and d.context != context):
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
        if p.change.diff and new is None and m.outcome in ("discard", "crash"):
            # A code idea: the same code axis failed before in a change memory finds similar.
            return (f"Memory holds a similar code change on {axis} that failed: {m.experiment_id} "
                    f"({m.status or m.outcome}: {m.text[:160]}).")
        failed = _numeric(m.knobs.get(axis))
        if new is not None and champ is not None and failed is not None and _inside_failed_range(p.direction, new, champ, failed):
            return f"Memory holds a similar failure, {m.experiment_id} ({axis}={m.knobs.get(axis)}, {m.status or m.outcome})."
    return None
