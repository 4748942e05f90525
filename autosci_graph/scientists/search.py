"""SearchScientist: the offline default. No LLM; a real search strategy over the task's knobs.

How it thinks, from the shared state only (it keeps nothing between calls):

* **organize** — splits the knobs among teams so that every team owns at least one never-tested
  axis, ranks axes by measured effect (an upper-confidence score: mean gain over the noise floor
  plus a bonus for axes tried rarely) and writes a falsifiable hypothesis per team.
* **propose** — a coordinate pattern search around the champion: on the team's best axis it keeps
  going in a direction that produced keeps, reverses a direction that failed, and halves the step
  toward a recorded failure instead of repeating it; a second, bold proposal on another axis takes
  a step three to four times larger. Recalled failures from memory count as recorded failures.
* **critique** — the automatic rules, plus a nearest-neighbour surrogate of past results: a
  proposal whose nearest measured neighbours lost clearly more than the noise floor is rejected.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

from autosci_graph.scientists.base import (
    CritiqueReply,
    HypothesisDraft,
    LabView,
    OrganizeReply,
    ProposalDraft,
    ProposeReply,
    RecalledMemory,
    ReviewDraft,
    Scientist,
)
from autosci_graph.scientists.knowledge import full_config
from autosci_graph.scientists.rules import auto_review
from autosci_graph.state import Change, Direction, Proposal, Team
from autosci_graph.task import CategoricalKnob, FloatKnob, IntKnob, Knob, KnobValue

_NORMAL_STEP = {"log": 2.0, "linear": 0.15}
_BOLD_STEP = {"log": 4.0, "linear": 0.35}
#: Once the usual step is taken (tried, or blocked by a failure), the search refines: each scale
#: shrinks the step, so it keeps finding untried points near the champion instead of stalling.
_REFINE_SCALES = (1.0, 0.5, 0.25, 0.125)


def _rng(*parts: object) -> random.Random:
    # Seeded from the state, so a resumed run makes the same proposals it would have made.
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def _to_unit(knob: Knob, value: KnobValue) -> float:
    """Position of a value in [0, 1] along its knob (log scale where the knob is)."""
    if isinstance(knob, CategoricalKnob):
        return knob.choices.index(knob.validate_value(value)) / max(1, len(knob.choices) - 1)
    lo, hi, v = float(knob.low), float(knob.high), float(value)  # type: ignore[arg-type]
    if knob.log:
        return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (v - lo) / (hi - lo)


def _move(knob: Knob, value: KnobValue, direction: Direction, bold: bool, toward: float | None = None, scale: float = 1.0) -> KnobValue | None:
    """The knob value one step away from ``value``; ``None`` when the bound is already reached.

    With ``toward`` (a recorded failure on this side) it takes half the way there instead.
    """
    if isinstance(knob, CategoricalKnob):
        return None
    v = float(value)  # type: ignore[arg-type]
    sign = 1.0 if direction == "increase" else -1.0
    if toward is not None:
        new = math.sqrt(v * toward) if knob.log and v > 0 and toward > 0 else (v + toward) / 2
    elif knob.log:
        factor = (_BOLD_STEP if bold else _NORMAL_STEP)["log"] ** scale
        new = v * factor**sign
    else:
        new = v + sign * scale * (_BOLD_STEP if bold else _NORMAL_STEP)["linear"] * (float(knob.high) - float(knob.low))
    new = min(max(new, float(knob.low)), float(knob.high))
    if isinstance(knob, IntKnob):
        new_i = int(round(new))
        if new_i == int(v):
            new_i = int(v) + int(sign)
        if not knob.low <= new_i <= knob.high:
            return None
        return new_i
    if math.isclose(new, v, rel_tol=1e-9):
        return None
    return float(f"{new:.4g}")


class SearchScientist(Scientist):
    """An offline scientist that searches the task's knob space from measured effects and memory.

    Example::

        from autosci_graph import SearchScientist, build_lab_graph
        graph = build_lab_graph().compile()
        # the lab uses SearchScientist() when no model is configured

    Args:
        exploration: weight of the bonus for rarely tried axes in the axis score.
        surrogate_k: neighbours the critique surrogate averages over.
    """

    name = "search"

    def __init__(self, *, exploration: float = 1.0, surrogate_k: int = 3) -> None:
        self.exploration = exploration
        self.surrogate_k = surrogate_k

    # -- organize ----------------------------------------------------------------------------

    def _axis_scores(self, view: LabView) -> dict[str, float]:
        k = view.knowledge
        sigma = k.noise_sigma or 1e-9
        total = sum(e.tried for e in k.effects.values()) + 1
        scores: dict[str, float] = {}
        for axis in view.task.knobs:
            eff = k.effects.get(axis)
            if eff is None or eff.tried == 0:
                scores[axis] = 10.0  # never tested: the method owes it a look
                continue
            best = eff.best_gain if eff.best_gain is not None else 0.0
            scores[axis] = best / sigma + self.exploration * math.sqrt(math.log(total + 1) / eff.tried) - 0.5 * eff.crashes
        return scores

    def organize(self, view: LabView, *, n_teams: int, agents: list[str]) -> OrganizeReply:
        scores = self._axis_scores(view)
        exhausted = {t_axis for t in view.teams if t.status != "active" for t_axis in t.hypothesis.axes}
        # Ties (every axis untested, at the start) follow the task's knob order: task authors
        # list the knobs they expect to matter most first.
        position = {k: i for i, k in enumerate(view.task.knobs)}
        ranked = sorted(scores, key=lambda a: (-scores[a], a in exhausted, position[a]))
        untested = [a for a in ranked if a in view.knowledge.untested_axes]
        n_drafts = max(1, min(n_teams + 1, len(ranked)))
        drafts: list[HypothesisDraft] = []
        metric = view.task.metric
        for i in range(n_drafts):
            own = ranked[i::n_drafts]
            if untested and not any(a in untested for a in own):
                own = [untested[i % len(untested)]] + own
            own = list(dict.fromkeys(own))[:3]
            primary = own[0]
            eff = view.knowledge.effects.get(primary)
            if eff and eff.by_direction:
                direction = max(eff.by_direction, key=lambda d: eff.by_direction[d])
                claim = f"moving {primary} ({direction}) improves {metric.name}"
            else:
                claim = f"{primary} is mis-set at the champion and moving it improves {metric.name}"
            drafts.append(
                HypothesisDraft(
                    statement=f"{claim}; {' and '.join(own[1:]) + ' modulate' if own[1:] else 'it acts alone'} its effect.",
                    prediction=f"a {primary} change beats the champion's {metric.name} by more than the noise floor within 3 rotations",
                    falsification=f"3 refuting discards on {', '.join(own)} and no supporting keep over 3 rotations",
                    axes=own,
                    author=agents[i % len(agents)] if agents else "search",
                    promise=min(1.0, max(0.0, 0.5 + 0.05 * scores[primary])),
                )
            )
        # Each agent votes for the most promising draft it did not write (ties by order).
        votes = []
        for agent in agents:
            options = [i for i, d in enumerate(drafts) if d.author != agent] or list(range(len(drafts)))
            votes.append(max(options, key=lambda i: (drafts[i].promise, -i)))
        return OrganizeReply(hypotheses=drafts, votes=votes)

    # -- propose -----------------------------------------------------------------------------

    def _failures_on(self, view: LabView, axis: str, recalled: Sequence[RecalledMemory]) -> list[tuple[float, str]]:
        """Numeric values on ``axis`` where runs failed (dead ends and recalled failures)."""
        out: list[tuple[float, str]] = []
        for d in view.dead_ends:
            if d.axis == axis and isinstance(d.value, (int, float)) and not isinstance(d.value, bool):
                out.append((float(d.value), d.experiment_id))
        for m in recalled:
            v = m.knobs.get(axis)
            if m.outcome != "keep" and m.axis == axis and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append((float(v), m.experiment_id))
        return out

    def _candidate(self, view: LabView, axis: str, bold: bool, recalled: Sequence[RecalledMemory], rng: random.Random) -> ProposalDraft | None:
        knob = view.task.knobs[axis]
        champ_value = view.champion.config.get(axis, knob.default)
        eff = view.knowledge.effects.get(axis)
        if isinstance(knob, CategoricalKnob):
            tried = {str(e.result.change.knobs.get(axis)) for e in view.experiments}
            options = [c for c in knob.choices if c != champ_value]
            rng.shuffle(options)
            options.sort(key=lambda c: str(c) in tried)  # never-measured values first
            for choice in options:
                draft = ProposalDraft(axis=axis, direction="set", knobs={axis: choice}, bold=bold,
                                      rationale=f"{axis}={choice!r} instead of {champ_value!r}, measured against the current champion",
                                      prediction=f"{view.task.metric.name} improves beyond noise")
                if not self._rule_blocked(view, draft):
                    return draft
            return None
        directions: list[Direction] = ["increase", "decrease"]
        if eff and eff.by_direction:
            directions.sort(key=lambda d: -eff.by_direction.get(d, 0.0))
        else:
            rng.shuffle(directions)
        failures = self._failures_on(view, axis, recalled)
        scales = _REFINE_SCALES[:1] if bold else _REFINE_SCALES
        momentum = self._momentum(view, axis)
        for scale in scales:
            for direction in directions:
                # A direction that just produced a keep is followed with a doubled step.
                s = scale * (2.0 if direction == momentum and scale == 1.0 and not bold else 1.0)
                step = self._step(view, axis, knob, champ_value, direction, bold, s, failures, eff)
                if step is not None and not self._rule_blocked(view, step):
                    return step
        return None

    @staticmethod
    def _momentum(view: LabView, axis: str) -> str | None:
        """The direction of the last exploration on ``axis``, if it was kept."""
        for e in reversed(view.experiments):
            if e.proposal.axis == axis and e.kind in ("explore", "confirm") and e.outcome != "pending_confirmation":
                return e.proposal.direction if e.outcome == "keep" else None
        return None

    def _step(self, view: LabView, axis: str, knob: Knob, champ_value: KnobValue, direction: Direction, bold: bool,
              scale: float, failures: list[tuple[float, str]], eff: object) -> ProposalDraft | None:
        value = _move(knob, champ_value, direction, bold, scale=scale)
        if value is None:
            return None
        champ_f = float(champ_value)  # type: ignore[arg-type]
        blocking = [(f, eid) for f, eid in failures
                    if (f > champ_f and float(value) >= f) or (f < champ_f and float(value) <= f)]
        note = ""
        if blocking:
            nearest, eid = min(blocking, key=lambda t: abs(t[0] - champ_f))
            value = _move(knob, champ_value, direction, bold, toward=nearest)
            if value is None or math.isclose(float(value), nearest):
                return None
            note = f"{eid} failed at {axis}={nearest:g}; this is a half step toward it, not the same move"
        by_dir = getattr(eff, "by_direction", {}) or {}
        gain_txt = f" (measured {direction} gain {by_dir[direction]:+.4g})" if direction in by_dir else ""
        return ProposalDraft(
            axis=axis, direction=direction, knobs={axis: value}, bold=bold, what_is_different=note,
            rationale=f"{'bold ' if bold else ''}{direction} of {axis} from {champ_value} to {value}{gain_txt}",
            prediction=f"{view.task.metric.name} improves by more than the noise floor",
        )
        return None

    def propose(self, view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int = 2) -> ProposeReply:
        rng = _rng(view.task.name, len(view.experiments), team.team_id, author, len(view.feedback))
        scores = self._axis_scores(view)
        own = [a for a in team.hypothesis.axes if a in view.task.knobs]
        # Other teams' primary axes are theirs to mine; stray there only when nothing else is left.
        theirs = {t.hypothesis.axes[0] for t in view.teams if t.status == "active" and t.team_id != team.team_id and t.hypothesis.axes}
        others = sorted((a for a in view.task.knobs if a not in own), key=lambda a: (a in theirs, -scores[a]))
        position = {k: i for i, k in enumerate(view.task.knobs)}
        order = sorted(own, key=lambda a: (-scores[a] + rng.random() * 0.1, position[a])) + others
        drafts: list[ProposalDraft] = []
        used: set[str] = set()
        shift = len(view.feedback)  # a revision after rejections moves down the ranking
        for bold in ([False, True] if n >= 2 else [False]):
            for axis in order[shift:] + order[:shift]:
                if axis in used:
                    continue
                d = self._candidate(view, axis, bold, recalled, rng)
                if d is not None:
                    drafts.append(d)
                    used.add(axis)
                    break
        return ProposeReply(proposals=drafts[:n])

    def _rule_blocked(self, view: LabView, d: ProposalDraft) -> bool:
        """Skip drafts that the automatic rules will certainly reject (saves a revision)."""
        probe = Proposal(proposal_id="probe", author="search", team="", axis=d.axis, direction=d.direction,
                         change=Change(knobs=d.knobs), what_is_different=d.what_is_different)
        return auto_review(probe, view) is not None

    # -- critique ----------------------------------------------------------------------------

    @staticmethod
    def _losing_family(view: LabView, proposal: Proposal, sigma: float | None) -> str | None:
        """Two clear losses (each worse than 2σ) in this axis+direction since the last keep: the
        critic stops the family one run before the dead-end rule would."""
        if not sigma:
            return None
        since = max((e.index for e in view.experiments if e.outcome == "keep" and e.kind in ("explore", "confirm")), default=-1)
        fam = [e for e in view.experiments if e.kind == "explore" and e.index > since
               and (e.proposal.axis, e.proposal.direction) == (proposal.axis, proposal.direction)]
        losses = [e for e in fam if e.gain is not None and e.gain < -2 * sigma]
        if len(losses) >= 2 and len(losses) == len(fam):
            ids = ", ".join(f"{e.result.experiment_id} ({e.gain:+.3g})" for e in losses)
            return (f"{proposal.axis}/{proposal.direction} lost clearly twice since the last keep ({ids}; 2σ = "
                    f"{2 * sigma:.3g}); a third move the same way is predicted to lose")
        return None

    def critique(self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> CritiqueReply:
        task = view.task
        sigma = view.knowledge.noise_sigma
        losing = self._losing_family(view, proposal, sigma)
        if losing:
            return CritiqueReply(review=ReviewDraft(approve=False, reason=losing))
        cfg = full_config(task, proposal.change.model_copy(update={"knobs": {**view.champion.config, **proposal.change.knobs}}))
        neighbours: list[tuple[float, float, str]] = []
        for e in view.experiments:
            if e.gain is None or e.kind != "explore":
                continue
            other = full_config(task, e.result.change)
            dist = math.sqrt(sum((_to_unit(knob, cfg[k]) - _to_unit(knob, other[k])) ** 2 for k, knob in task.knobs.items() if k in other and k in cfg))
            neighbours.append((dist, e.gain, e.result.experiment_id))
        neighbours.sort()
        near = [n for n in neighbours[: self.surrogate_k] if n[0] < 0.12]
        if near and sigma:
            predicted = sum(g for _, g, _ in near) / len(near)
            ids = ", ".join(i for _, _, i in near)
            if predicted < -2 * sigma:
                return CritiqueReply(review=ReviewDraft(approve=False, reason=(
                    f"surrogate: nearest measured neighbours ({ids}) lost {predicted:+.4g} on average, "
                    f"more than 2σ ({2 * sigma:.3g}); this change is predicted to lose too")))
            return CritiqueReply(review=ReviewDraft(approve=True, reason=(
                f"surrogate predicts gain {predicted:+.4g} from neighbours {ids}; not in a recorded failed range")))
        return CritiqueReply(review=ReviewDraft(approve=True, reason=(
            f"{proposal.axis}/{proposal.direction} is unexplored near this point; tagged, not in a failed range, worth a run")))
