"""The lead: the best configuration the lab has measured, which every team builds on.

Certifying every small step before building on it spends a noisy budget on seeds: a step worth
2σ needs four or more seeds to clear a bar sized for a low false-promotion rate, and meanwhile
every team waits on the champion. Instead the lab keeps a *lead*: of every configuration measured
so far, the one with the best mean over its seeds, when it beats the champion's, as a single agent
keeps its best run. Teams step from the lead, so steps that look good compound, across teams, and
the lead's gain over the champion grows with each one until it clears the bar on few seeds. A
seed goes to the lead only when one more could carry it over the bar, or when steps from it keep
failing, which is how a lucky lead is caught: its fresh seed regresses, and its mean with it.

A lead's verdict does not matter here: futility closes a candidate that cannot be *certified*
over the champion, which says nothing against searching from it. Promotion itself is separate
(:func:`autosci_graph.lab.promotion.judge`): only a configuration's own seeds against the
champion's can promote it, so the lead never lowers the bar, and the champion every report shows
is always certified. Plain functions; ``share`` and the team branch call them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from autosci_graph.lab.changes import Stack, change_key, change_to_run, champion_change, champion_key, has_code
from autosci_graph.lab.posterior import Posterior
from autosci_graph.lab.promotion import PromotionRule, evidence, is_deterministic, over_default
from autosci_graph.state import Candidate, Champion, Change, RunResult, Submission
from autosci_graph.task import KnobValue, Metric, ResearchTask


def candidate_of(sub: Submission) -> str:
    """The candidate a submission measures: a confirmation names it, an exploration is it."""
    return sub.candidate_of or sub.experiment_id


def candidate_runs(task: ResearchTask, cand: Candidate, results: Iterable[RunResult],
                   subs: Mapping[str, Submission]) -> list[RunResult]:
    """The candidate's successful runs of its own change, one per seed it ran."""
    key = change_key(task, cand.change)
    return [r for r in results
            if r.ok and r.experiment_id in subs and candidate_of(subs[r.experiment_id]) == cand.candidate_id
            and change_key(task, r.change) == key]


def mean_metric(runs: Sequence[RunResult]) -> float:
    return sum(float(r.metric) for r in runs if r.metric is not None) / len(runs)


def lead_of(task: ResearchTask, candidates: Iterable[Candidate], champion: Champion,
            runs: Callable[[Candidate], list[RunResult]], *, exclude: str | None = None,
            posterior: Posterior | None = None) -> Candidate | None:
    """The lead: of every configuration measured so far, the one the evidence rates best, when
    that beats the champion (ties go to the earlier id, so the choice is a function of the
    results alone). With a ``posterior`` the rating is its mean, which pools every run near a
    configuration with its own seeds (:mod:`autosci_graph.lab.posterior`); without one, the mean
    over the configuration's own seeds. Any candidate counts, whatever its verdict: a step too
    small to be certified over the champion (futility closed it) is still the best place to
    search from, as a single agent keeps its best run; only a promoted one is the champion already."""
    current = champion_key(task, champion)
    measured = [c for c in candidates
                if c.status != "promoted" and c.candidate_id != exclude and change_key(task, c.change) != current and runs(c)]
    if not measured or champion.metric is None:
        return None
    if posterior is not None:
        rated = posterior.means([c.change for c in measured] + [champion_change(champion)])
        scores = [-v for v in rated[:-1]]  # lower is better
        floor = -rated[-1]
    else:
        scores = [-task.metric.gain(mean_metric(runs(c)), 0.0) for c in measured]
        floor = -task.metric.gain(champion.metric, 0.0)
    best = min(((sc, c.candidate_id, c) for sc, c in zip(scores, measured) if sc < floor), default=None,
               key=lambda t: t[:2])
    return best[2] if best else None


def as_base(lead: Candidate, runs: Sequence[RunResult]) -> Champion:
    """The lead as the champion teams build on (its configuration, code and measured seeds)."""
    by_seed = {str(r.seed): float(r.metric) for r in runs if r.metric is not None}
    return Champion(experiment_id=lead.candidate_id, config=dict(lead.change.knobs), diff=lead.change.diff,
                    metric=sum(by_seed.values()) / len(by_seed), seeds=[int(s) for s in by_seed], metrics_by_seed=by_seed,
                    description=f"the lab's lead, not yet promoted: {lead.proposal.rationale or lead.change.description}")


def direction(cand: Candidate, since: Candidate | None = None) -> tuple[dict[str, KnobValue], list[str]]:
    """Everything the candidate changes from the champion it is measured against: knob overrides
    and the code increments along the leads it stepped from. ``since``: one of its ancestors that
    the new base already contains (a lead both it and the new champion stepped from); then only
    the steps taken after that ancestor count, since the ancestor's own are in the base already."""
    reference = since.change.knobs if since is not None else cand.base.config
    knobs = {k: v for k, v in cand.change.knobs.items() if reference.get(k) != v}
    increments = list(cand.increments) or ([cand.proposal.change.diff or ""] if has_code(cand.proposal.change) else [])
    if since is not None and increments[: len(since.increments)] == list(since.increments):
        increments = increments[len(since.increments):]
    return knobs, increments


def ancestors(cand: Candidate | None, candidates: Mapping[str, Candidate]) -> list[Candidate]:
    """``cand`` and the leads it stepped from, nearest first."""
    chain: list[Candidate] = []
    seen: set[str] = set()
    while cand is not None and cand.candidate_id not in seen:  # a parent loop would not end otherwise
        chain.append(cand)
        seen.add(cand.candidate_id)
        cand = candidates.get(cand.parent) if cand.parent else None
    return chain


def shared_ancestor(cand: Candidate, promoted: Candidate | None, candidates: Mapping[str, Candidate]) -> Candidate | None:
    """The nearest lead that ``cand`` stepped from and that the promoted candidate contains (it
    or one of its own ancestors): what the new champion and the candidate have in common."""
    theirs = {c.candidate_id for c in ancestors(promoted, candidates)}
    return next((c for c in ancestors(cand, candidates)[1:] if c.candidate_id in theirs), None)


def apply_direction(champion: Champion, knobs: Mapping[str, KnobValue], increments: Sequence[str], *,
                    stack: Stack | None, description: str = "") -> Change:
    """``champion`` with the overrides and each code increment applied in order (raises
    :class:`~autosci_graph.lab.changes.StackingError` when one no longer applies)."""
    change = change_to_run(champion, Change(knobs=dict(knobs)), stack=stack, description=description)
    for inc in increments:
        step = Champion(experiment_id=None, config=dict(change.knobs), diff=change.diff)
        change = change_to_run(step, Change(diff=inc), stack=stack, description=description)
    return change


def seedable(task: ResearchTask, lead: Candidate, champion: Champion, runs: int, rule: PromotionRule) -> bool:
    """Whether a seed of the lead could be judged at all: it was measured against the current
    champion (a lead on an older one is a place to search from, not a comparison), and it has
    fewer runs than a verdict ever needs."""
    return champion_key(task, lead.base) == champion_key(task, champion) and runs < rule.max_seeds


def worth_a_seed(metric: Metric, champion: Sequence[float], values: Sequence[float], sigma: float | None, dof: int,
                 rule: PromotionRule, failed_steps: int, default: Sequence[float] = ()) -> bool:
    """Whether the lead's next seed should run now: one more seed at its current mean would clear
    the bar, steps from it keep failing (a lucky lead shows itself on a fresh seed), or the noise
    rests on too few repeats for any modest gain to be judged (the seed measures it)."""
    if sigma is None:
        return True  # the noise is not measured yet: a seed measures it
    if is_deterministic(sigma, dof):
        return False  # one run decided
    if failed_steps >= rule.recheck_after_failed_steps:
        return True
    ev = evidence(metric, champion, values, sigma, dof, rule)
    if ev.gain <= 0 or ev.se is None:
        return False
    # With its seed the lead also adds a degree of freedom to the noise estimate: on few repeats
    # that alone can lower the t bar severalfold, so it counts in the projection.
    n = len(values) + 1
    projected = ev.gain / (sigma * math.sqrt(1.0 / n + 1.0 / max(len(champion), n)))
    if dof < rule.min_noise_dof:
        # Too few repeats for the t bar to let any modest gain through: the seed is worth it when
        # the gain would clear the bar were σ known, since it also measures σ.
        return projected > rule.bar_sigmas
    if over_default(metric, default, values, sigma, dof, rule) is not None:
        return projected > rule.refine_bar(dof + 1)
    return projected > rule.bar(dof + 1)


def runs_to_verdict(metric: Metric, champion: Sequence[float], values: Sequence[float], sigma: float | None, dof: int,
                    rule: PromotionRule, default: Sequence[float] = ()) -> int | None:
    """Experiments the lead needs for its current mean to clear the bar that applies: its own
    further seeds, each with a champion seed where the champion would have fewer (the comparison
    stays paired), each seed adding a degree of freedom to σ. ``None`` when no number within
    ``max_seeds`` would (or the noise is not measured, or one run already decided)."""
    if sigma is None or is_deterministic(sigma, dof) or not values or not champion:
        return None
    gain = evidence(metric, champion, values, sigma, dof, rule).gain
    if gain <= 0:
        return None
    n, m = len(values), len(champion)
    certified = over_default(metric, default, values, sigma, dof, rule) is not None
    for extra in range(1, rule.max_seeds - n + 1):
        n2 = n + extra
        m2 = max(m, n2)
        added = extra + (m2 - m)
        z = gain / (sigma * math.sqrt(1.0 / n2 + 1.0 / m2))
        bar = rule.refine_bar(dof + added) if certified else rule.bar(dof + added)
        if z > bar:
            return added
    return None
