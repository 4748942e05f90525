"""SearchScientist: the offline default. No LLM; a real search strategy over the task's knobs.

How it thinks, from the shared state only (it keeps nothing between calls):

* **organize** — splits the knobs among teams so that every team owns at least one never-tested
  axis, ranks axes by measured effect (an upper-confidence score: mean gain over the noise floor
  plus a bonus for axes tried rarely) and writes a falsifiable hypothesis per team.
* **propose** — candidates around what the team builds on (the champion, or the lab's lead) on
  the team's own axes, and on others' axes when the surrogate expects ``STRAY_FACTOR`` times more
  there: steps of fixed fractions of each knob's (log) range (a bold one is ``BOLD_STEP`` of the
  range, so steps never shrink to nothing), after a move the bracket of that move (its midpoint
  and an overshoot), joint moves of two axes, and every other choice of a categorical. A Gaussian-process surrogate fitted to
  every result (:mod:`~autosci_graph.scientists.surrogate`) ranks them by expected improvement;
  before it has enough data, bold moves on untested axes go first. Candidates the automatic rules
  would reject (repeats, failed ranges, recalled failures, contradictions) are never proposed.
* **critique** — the automatic rules, plus the same surrogate: a proposal it confidently predicts
  to lose by more than the noise floor is rejected.
"""

from __future__ import annotations

import hashlib
import math
import random

from autosci_graph.lab.critique import auto_review, unit_step
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
from autosci_graph.scientists.surrogate import Surrogate
from autosci_graph.state import Change, Direction, Proposal, Team
from autosci_graph.task import CategoricalKnob, KnobValue, from_unit, unit

#: A bold move steps this fraction of the knob's (log) range; the others step fractions of it.
BOLD_STEP = 0.25
_STEPS = (BOLD_STEP, BOLD_STEP / 2, BOLD_STEP / 4)
#: A team moves knobs it does not own when the surrogate expects this many times more there.
STRAY_FACTOR = 2.0
#: Joint moves of two team axes sampled per proposal turn.
_JOINT_SAMPLES = 12


def _rng(*parts: object) -> random.Random:
    # Seeded from the lab's seed and the state, so a resumed run makes the same proposals.
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def _fits(diff: str, files: dict[str, str]) -> bool:
    """Whether every line a diff keeps or removes is still in the champion's files: an idea whose
    context another accepted change rewrote would only be refused by the check before compute."""
    if not files:
        return True
    present = {ln.strip() for text in files.values() for ln in text.splitlines()}
    needed = [ln[1:].strip() for ln in diff.splitlines() if ln[:1] in (" ", "-") and not ln.startswith("---")]
    return all(ln in present for ln in needed if ln)


def _code_with(view: LabView, increment: str | None) -> str | None:
    """The code a change would run with, as far as the surrogate's code features can tell."""
    return view.champion.diff if not increment else (view.champion.diff or "") + "\n" + increment


def _axes(view: LabView) -> list[str]:
    """Every axis a team may own: the knobs, then the code ideas' axes (``code:<axis>``)."""
    return list(view.task.knobs) + list(dict.fromkeys(i.axis_tag for i in view.ideas))


class SearchScientist(Scientist):
    """An offline scientist that searches the task's knob space from measured effects and memory.

    Example::

        from autosci_graph import SearchScientist, build_lab_graph
        graph = build_lab_graph().compile()
        # the lab uses SearchScientist() when no model is configured

    Args:
        exploration: weight of the bonus for rarely tried axes in the axis score.
        stray_factor: a team moves knobs it does not own when the surrogate's expected
            improvement there is this many times its best on its own axes (``math.inf``: never).
        primary_first: while no run has moved a team's primary axis, a bold move on it leads
            the team's drafts (the hypothesis is tested first); ``False``: the ranking alone decides.
    """

    name = "search"

    def __init__(self, *, exploration: float = 1.0, stray_factor: float = STRAY_FACTOR, primary_first: bool = True) -> None:
        self.exploration = exploration
        self.stray_factor = stray_factor
        self.primary_first = primary_first

    # -- organize ----------------------------------------------------------------------------

    def _axis_scores(self, view: LabView) -> dict[str, float]:
        k = view.knowledge
        sigma = k.noise_sigma or 1e-9
        total = sum(e.tried for e in k.effects.values()) + 1
        scores: dict[str, float] = {}
        for axis in _axes(view):
            eff = k.effects.get(axis)
            if eff is None or eff.tried == 0:
                scores[axis] = 10.0  # never tested: the method owes it a look
                continue
            best = eff.best_gain if eff.best_gain is not None else 0.0
            scores[axis] = best / sigma + self.exploration * math.sqrt(math.log(total + 1) / eff.tried) - 0.5 * eff.crashes
        return scores

    def organize(self, view: LabView, *, n_teams: int, agents: list[str]) -> OrganizeReply:
        scores = self._axis_scores(view)
        # Ties (every axis untested, at the start) follow the task's knob order: task authors
        # list the knobs they expect to matter most first.
        position = {k: i for i, k in enumerate(_axes(view))}
        ranked = sorted(scores, key=lambda a: (-scores[a], position[a]))
        # Every axis belongs to some team: the new teams split what the active ones do not own,
        # so no knob or code idea falls out of the search when a team dissolves.
        owned = {a for t in view.teams if t.status == "active" for a in t.hypothesis.axes}
        pool = [a for a in ranked if a not in owned] or ranked
        untested = [a for a in pool if a in view.knowledge.untested_axes]
        n_drafts = max(1, min(n_teams, len(pool)))
        drafts: list[HypothesisDraft] = []
        metric = view.task.metric
        knobs = [a for a in pool if a in view.task.knobs]
        code = [a for a in pool if a not in view.task.knobs]
        for i in range(n_drafts):
            # Round-robin over the ranking: each team gets strong and weak axes alike, knobs and
            # code ideas alike, and the best-ranked axis it owns leads its hypothesis.
            own = knobs[i::n_drafts] + code[i::n_drafts] or pool[i % len(pool):][:1]
            if untested and not any(a in untested for a in own):
                own = [untested[i % len(untested)]] + own
            own = list(dict.fromkeys(own))
            primary = own[0]
            eff = view.knowledge.effects.get(primary)
            directions: dict[str, Direction] = {}
            if eff and eff.by_direction and max(eff.by_direction.values()) > 0:
                direction = max(eff.by_direction, key=lambda d: eff.by_direction[d])
                claim = f"moving {primary} ({direction}) improves {metric.name}"
                if direction in ("increase", "decrease"):
                    directions[primary] = direction  # type: ignore[assignment]
            else:
                claim = f"{primary} is mis-set at the champion and moving it improves {metric.name}"
            drafts.append(
                HypothesisDraft(
                    statement=f"{claim}; {' and '.join(own[1:]) + ' modulate' if own[1:] else 'it acts alone'} its effect.",
                    prediction=f"a {primary} change beats the champion's {metric.name} by more than the noise floor within 3 rotations",
                    falsification=f"3 refuting discards on {', '.join(own)} and no supporting keep over 3 rotations",
                    axes=own,
                    directions=directions,
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

    def propose(self, view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int = 2) -> ProposeReply:
        rng = _rng(view.seed, view.task.name, len(view.experiments), team.team_id, author, len(view.feedback))
        task = view.task
        axes = _axes(view)
        own = [a for a in team.hypothesis.axes if a in axes]
        theirs = {t.hypothesis.axes[0] for t in view.teams if t.status == "active" and t.team_id != team.team_id and t.hypothesis.axes}
        # Other teams' primary axes are theirs to mine: they come last among the axes a team may stray to.
        rest = [a for a in axes if a not in own and a not in theirs] + [a for a in axes if a not in own and a in theirs]
        surrogate = Surrogate.fit(task, view.experiments, view.champion, seed=view.seed, ideas=view.ideas)
        mine = self._knob_drafts(view, [a for a in own if a in task.knobs], rng, team, recalled, surrogate)
        # Code ideas stay with the team that owns their axis; only knob moves stray.
        code = [d for d in self._idea_drafts(view, [a for a in own if a not in task.knobs])
                if not self._rule_blocked(view, d, team, recalled)]
        elsewhere = self._knob_drafts(view, [a for a in rest if a in task.knobs], rng, team, recalled, surrogate)
        if not (mine or code or elsewhere):
            return ProposeReply(proposals=[])
        # Scored once, the team's own moves first: a prefix of the list is what it runs from.
        pool = mine + elsewhere if mine else ([] if code else elsewhere)
        scores = self._scores(view, pool, surrogate, rng) if pool else []
        drafts = mine if (mine or code) else elsewhere
        if mine and elsewhere and surrogate is not None and math.isfinite(self.stray_factor) \
                and max(scores[len(mine):]) > self.stray_factor * max(scores[: len(mine)]):
            # A team keeps to its axes unless the surrogate expects far more elsewhere: a team
            # whose axes turned out irrelevant would otherwise spend its share of the budget there.
            drafts = mine + elsewhere
        scores = scores[: len(drafts)]
        # A revision after rejections moves down the ranking instead of proposing the same again,
        # and so does an experimenter whose teammates draft ahead of it this round from the same
        # state (they take the top of the ranking; the round's claims would refuse a second copy).
        skip = len(view.feedback) + view.siblings_drafting * max(1, n)
        order = [drafts[i] for i in sorted(range(len(drafts)), key=lambda i: -scores[i])]
        if self.primary_first:
            order = self._primary_first(view, team, order)
        order, code = order[skip:] or order[-1:], code[skip:] or code[-1:]
        if surrogate is not None and code:
            # Code ideas compete with knob moves on the same footing: expected improvement of the
            # champion with the idea in its code (an untried idea is uncertain, so it scores well).
            ei = surrogate.expected_improvement([view.champion.config] * len(code),
                                                diffs=[_code_with(view, d.diff) for d in code])
            code = [code[i] for i in sorted(range(len(code)), key=lambda i: -float(ei[i]))]
            best_knob = max((scores[drafts.index(d)] for d in order[:1]), default=-math.inf)
            if float(max(ei)) > best_knob:
                order = [d for d in order if d is not code[0]]
                chosen = [code[0]]
                seconds = [d for d in order if d.bold] + [d for d in order if not d.bold] + code[1:]
                chosen += [d for d in seconds if d.axis != code[0].axis][: max(0, n - 1)]
                return ProposeReply(proposals=chosen[:n])
        chosen = order[:1] or code[:1]
        if n >= 2:
            # The bold move: the team's next untried code idea, else the best bold knob move.
            bold = next((d for d in code if d not in chosen), None) or next(
                (d for d in order if d.bold and d.axis != chosen[0].axis), None)
            other = bold or next((d for d in order if d.axis != chosen[0].axis), None)
            if other is not None:
                chosen.append(other)
        return ProposeReply(proposals=chosen[:n])

    def _knob_drafts(self, view: LabView, axes: list[str], rng: random.Random, team: Team, recalled: list[RecalledMemory],
                     surrogate: Surrogate | None) -> list[ProposalDraft]:
        """Knob moves on ``axes`` that the automatic rules and this scientist's critic would pass."""
        drafts = [d for d in self._candidates(view, axes, rng) if not self._rule_blocked(view, d, team, recalled)]
        if surrogate is not None:  # what this scientist's critic would reject is not worth proposing
            drafts = [d for d in drafts if self._predicted_loss(view, surrogate, d.knobs, None) is None] or drafts
        return drafts

    @staticmethod
    def _idea_drafts(view: LabView, axes: list[str]) -> list[ProposalDraft]:
        """The task's code ideas on ``axes`` that no run has tried yet, in name order."""
        return [ProposalDraft(axis=i.axis_tag, direction="code", diff=i.diff, bold=True,
                              rationale=f"code idea {i.name}: {i.description}",
                              prediction=f"{view.task.metric.name} improves beyond the noise floor")
                for i in view.untried_ideas() if i.axis_tag in axes and _fits(i.diff, view.champion_files)]

    def _candidates(self, view: LabView, axes: list[str], rng: random.Random) -> list[ProposalDraft]:
        """Moves from the champion on ``axes``: fixed-fraction steps both ways, the bracket of
        the last keep on each axis, joint moves of two axes, every other categorical choice."""
        task, champ = view.task, view.champion.config
        out: list[ProposalDraft] = []
        numeric = [a for a in axes if not isinstance(task.knobs[a], CategoricalKnob)]
        for axis in axes:
            knob = task.knobs[axis]
            current = champ.get(axis, knob.default)
            if isinstance(knob, CategoricalKnob):
                out += [self._draft(view, {axis: c}, f"{axis}={c!r} instead of {current!r}") for c in knob.choices if c != current]
                continue
            u0 = unit(knob, current)
            targets = [u0 + sign * step for step in _STEPS for sign in (1.0, -1.0)]
            bracket = self._last_move(view, axis)
            if bracket is not None:
                before, after = unit(knob, bracket[0]), unit(knob, bracket[1])
                targets += [(before + after) / 2, after + (after - before)]  # the midpoint and an overshoot
            for u in targets:
                value = from_unit(knob, u)
                if value != current:
                    out.append(self._draft(view, {axis: value}, f"{axis} from {current} to {value}"))
        for _ in range(_JOINT_SAMPLES if len(numeric) >= 2 else 0):
            a, b = rng.sample(numeric, 2)
            knobs = {}
            for axis in (a, b):
                knob = task.knobs[axis]
                knobs[axis] = from_unit(knob, unit(knob, champ.get(axis, knob.default)) + rng.uniform(-BOLD_STEP, BOLD_STEP))
            if any(knobs[k] != champ.get(k) for k in knobs):
                out.append(self._draft(view, knobs, "joint move of " + " and ".join(f"{k} to {v}" for k, v in knobs.items())))
        unique: dict[str, ProposalDraft] = {}
        for d in out:
            unique.setdefault(repr(sorted(d.knobs.items())), d)
        return list(unique.values())

    @staticmethod
    def _primary_first(view: LabView, team: Team, order: list[ProposalDraft]) -> list[ProposalDraft]:
        """A team whose primary axis no run has moved tests its hypothesis first: a bold move on
        that axis leads (the ranking cannot judge an axis it has no data on, and the hypothesis,
        which put the axis first, is the better guide)."""
        primary = team.hypothesis.axes[0] if team.hypothesis.axes else None
        if primary not in view.task.knobs or primary not in view.knowledge.untested_axes:
            return order
        first = next((d for d in order if d.axis == primary and len(d.knobs) == 1
                      and (d.bold or isinstance(view.task.knobs[primary], CategoricalKnob))), None)
        return order if first is None else [first] + [d for d in order if d is not first]

    @staticmethod
    def _last_move(view: LabView, axis: str) -> tuple[KnobValue, KnobValue] | None:
        """The values of ``axis`` before and after the latest keep that moved it, if that keep
        made the current champion's value (a bracket is only useful around the current point).
        When the champion shown is the lab's lead, its move is the step it made from before."""
        if view.stepped_from is not None:
            before, after = view.stepped_from.get(axis), view.champion.config.get(axis)
            return (before, after) if before is not None and before != after else None  # type: ignore[return-value]
        config = dict(view.task.default_config())
        move = None
        for e in view.experiments:
            if e.outcome == "keep" and e.kind in ("explore", "confirm"):
                new = e.result.change.knobs
                if new.get(axis) != config.get(axis):
                    move = (config.get(axis), new.get(axis))
                config = {**config, **new}
        if move is None or move[1] != view.champion.config.get(axis):
            return None
        return move  # type: ignore[return-value]

    @staticmethod
    def _draft(view: LabView, knobs: dict[str, KnobValue], what: str) -> ProposalDraft:
        task, champ = view.task, view.champion.config
        steps = {a: unit_step(task, champ, knobs, a) or 0.0 for a in knobs}
        axis = max(steps, key=lambda a: steps[a])
        knob = task.knobs[axis]
        direction: Direction = "set"
        if not isinstance(knob, CategoricalKnob):
            direction = "increase" if float(knobs[axis]) > float(champ.get(axis, knob.default)) else "decrease"  # type: ignore[arg-type]
        bold = steps[axis] >= BOLD_STEP * 0.8 and not isinstance(knob, CategoricalKnob)
        return ProposalDraft(axis=axis, direction=direction, knobs=knobs, bold=bold,
                             rationale=f"{'bold ' if bold else ''}{what} ({steps[axis]:.0%} of its range)",
                             prediction=f"{task.metric.name} improves beyond the noise floor")

    def _scores(self, view: LabView, drafts: list[ProposalDraft], surrogate: Surrogate | None, rng: random.Random) -> list[float]:
        """Expected improvement under the surrogate; before it is fitted, bold moves on
        untested axes first, ties broken by the seeded generator."""
        if surrogate is not None:
            ei = surrogate.expected_improvement([{**view.champion.config, **d.knobs} for d in drafts],
                                                diffs=[view.champion.diff] * len(drafts))
            return [float(x) + 1e-15 * rng.random() for x in ei]
        untested = set(view.knowledge.untested_axes)
        return [2.0 * (d.axis in untested) + 1.0 * d.bold + (len(d.knobs) == 1) + rng.random() * 0.5 for d in drafts]

    def _rule_blocked(self, view: LabView, d: ProposalDraft, team: Team, recalled: list[RecalledMemory]) -> bool:
        """Skip drafts that the automatic rules will certainly reject (saves a revision)."""
        probe = Proposal(proposal_id="probe", author="search", team=team.team_id, axis=d.axis, direction=d.direction,
                         change=Change(knobs=d.knobs, diff=d.diff), bold=d.bold, what_is_different=d.what_is_different)
        return auto_review(probe, view, recalled) is not None

    # -- critique ----------------------------------------------------------------------------

    def critique(self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> CritiqueReply:
        surrogate = Surrogate.fit(view.task, view.experiments, view.champion, seed=view.seed, ideas=view.ideas)
        if surrogate is None:
            return CritiqueReply(review=ReviewDraft(approve=True, reason=(
                f"{proposal.axis}/{proposal.direction}: too few results for the surrogate to judge; tagged, "
                "not a repeat, not in a failed range: worth a run")))
        loss = self._predicted_loss(view, surrogate, proposal.change.knobs, proposal.change.diff)
        if loss is not None:
            return CritiqueReply(review=ReviewDraft(approve=False, reason=loss))
        gain, std = surrogate.predict([{**view.champion.config, **proposal.change.knobs}], diffs=[_code_with(view, proposal.change.diff)])
        return CritiqueReply(review=ReviewDraft(approve=True, reason=(
            f"surrogate predicts gain {float(gain[0]):+.4g} ± {float(std[0]):.3g} over the champion; not a repeat, "
            "not in a failed range")))

    @staticmethod
    def _predicted_loss(view: LabView, surrogate: Surrogate, knobs: dict[str, KnobValue], diff: str | None) -> str | None:
        """Why the surrogate is confident a change loses by more than the noise floor, or ``None``."""
        sigma = view.knowledge.noise_sigma or 0.0
        gain, std = surrogate.predict([{**view.champion.config, **knobs}], diffs=[_code_with(view, diff)])
        g, sd = float(gain[0]), float(std[0])
        if g + 2 * sd < 0 and g < -2 * sigma:
            return f"surrogate predicts a loss of {g:+.4g} ± {sd:.3g} (noise σ {sigma:.3g}): confidently worse than the champion"
        return None
