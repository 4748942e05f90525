"""The ``share`` node: every finished run is logged, judged, remembered and broadcast.

One judge per kind of run, each a thin use of :mod:`autosci_graph.lab`:

* ``baseline`` — the default configuration's seeds become the first champion;
* ``noise`` — a repeat of the champion on a new seed sharpens its mean and the noise floor;
* ``explore`` / ``confirm`` — a run of a *candidate*. Its verdict uses all the candidate's seeds
  against the champion's mean (:func:`~autosci_graph.lab.promotion.judge`): promote, reject, or
  keep it open and submit its next seed (and a champion seed when the comparison is unbalanced).

When the champion moves, every open candidate is rebased: its direction is re-expressed on the
new champion and measured again, or it is closed as moot. A run that comes back measured against
a champion that has since been replaced counts as evidence for its direction, never as a verdict
against a champion it did not run with. Control reads explicit state (``candidates``, ``champion``,
``submitted``); events are written for the report's timeline only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langgraph.runtime import Runtime

from autosci_graph.graphs.budget import can_start, experiments_left
from autosci_graph.graphs.context import LabContext
from autosci_graph.graphs.state import LabState, Notebook, changed_teams, task_ideas
from autosci_graph.lab.changes import StackingError
from autosci_graph.lab.lead import (
    apply_direction, as_base, candidate_of, candidate_runs, direction, lead_of, mean_metric, runs_to_verdict, seedable,
    shared_ancestor, worth_a_seed,
)
from autosci_graph.lab.candidates import next_confirmation, next_seed, rebased_change
from autosci_graph.lab.critique import refutes
from autosci_graph.lab.changes import champion_change, champion_key, change_key, context_key
from autosci_graph.lab.knowledge import noise_estimate
from autosci_graph.lab.posterior import Posterior
from autosci_graph.lab.promotion import ModelEvidence, evidence, judge
from autosci_graph.lab.teams import update_counters
from autosci_graph.state import (
    Candidate, Champion, Change, DeadEnd, ExperimentEntry, Outcome, Proposal, RunRequest, RunResult, Submission, Team,
)


@dataclass
class _Share:
    """What one ``share`` step reads and writes; the judges below update it in place."""

    ctx: LabContext
    state: LabState
    champion: Champion
    subs: dict[str, Submission]
    teams: dict[str, Team]
    candidates: dict[str, Candidate]
    entries: list[ExperimentEntry]
    new_entries: list[ExperimentEntry] = field(default_factory=list)
    dead_ends: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    submitted: list[Submission] = field(default_factory=list)
    #: Candidates written this step, in the order they were (never by id: ids carry the run id).
    touched: dict[str, None] = field(default_factory=dict)

    # -- helpers ------------------------------------------------------------------------------

    @property
    def everything(self) -> list[ExperimentEntry]:
        return self.entries + self.new_entries

    def can_start(self) -> bool:
        return can_start(self.ctx, self.state, extra_submitted=len(self.submitted), extra_in_flight=len(self.submitted))

    def submit(self, sub: Submission) -> None:
        self.ctx.executor.submit(RunRequest(experiment_id=sub.experiment_id, change=sub.change, seed=sub.seed))
        self.subs[sub.experiment_id] = sub
        self.submitted.append(sub)

    def log(self, result: RunResult, sub: Submission, outcome: Outcome, note: str, gain: float | None = None,
            champion_metric: float | None = None) -> ExperimentEntry:
        entry = ExperimentEntry(index=len(self.everything), result=result, proposal=sub.proposal, outcome=outcome, gain=gain,
                                champion_metric=champion_metric, kind=sub.kind, note=note)
        self.new_entries.append(entry)
        return entry

    def set_candidate(self, cand: Candidate) -> None:
        self.candidates[cand.candidate_id] = cand
        self.touched[cand.candidate_id] = None

    def in_flight_ids(self) -> set[str]:
        done = {e.result.experiment_id for e in self.everything}
        return {i for i in self.subs if i not in done}

    def runs_of(self, cand: Candidate, latest: RunResult | None = None) -> list[RunResult]:
        """The candidate's successful runs of its own change (all its seeds), ``latest`` included."""
        results = [e.result for e in self.everything] + ([latest] if latest is not None else [])
        return candidate_runs(self.ctx.task, cand, results, self.subs)

    def mean_of(self, cand: Candidate) -> float:
        return mean_metric(self.runs_of(cand))

    def lead(self, *, exclude: str | None = None) -> Candidate | None:
        """The lab's lead as this step has it."""
        return lead_of(self.ctx.task, self.candidates.values(), self.champion, self.runs_of, exclude=exclude,
                       posterior=self.posterior())

    def posterior(self, latest: ExperimentEntry | None = None, *, noise_floor: bool = False) -> Posterior | None:
        """The model of the metric over every successful run logged so far (and ``latest``)."""
        entries = self.everything + ([latest] if latest is not None else [])
        return Posterior.fit(self.ctx.task, entries, ideas=task_ideas(self.ctx.task), noise_floor=noise_floor)

    def sigma(self, latest: RunResult, sub: Submission) -> tuple[float | None, int]:
        """Pooled noise over the log and the run being judged."""
        provisional = ExperimentEntry(index=len(self.everything), result=latest, proposal=sub.proposal, outcome="discard", kind=sub.kind)
        return noise_estimate(self.ctx.task, self.everything + [provisional], upper=False)

    def default_values(self) -> list[float]:
        """The task default's baseline runs: the reference a refinement must still beat by the full bar."""
        return [float(e.result.metric) for e in self.everything if e.kind == "baseline" and e.result.ok and e.result.metric is not None]

    def event(self, kind: str, **fields: Any) -> None:
        self.events.append({"type": kind, **fields, "at": time.time(), "at_experiment": len(self.everything)})


def share(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Log, judge and share the results ``collect`` brought in."""
    ctx = runtime.context
    nb = Notebook(state, ctx.task)
    s = _Share(ctx=ctx, state=state, champion=nb.champion, subs={x.experiment_id: x for x in nb.submitted},
               teams={t.team_id: t for t in nb.teams}, candidates={c.candidate_id: c for c in nb.candidates}, entries=nb.log)
    logged = {e.result.experiment_id for e in s.entries}
    for raw in state.get("inbox", []):
        result = compact(RunResult.model_validate(raw))
        sub = s.subs.get(result.experiment_id)
        if sub is None or result.experiment_id in logged:
            continue  # not ours, or already shared before a resume
        logged.add(result.experiment_id)
        if sub.kind == "baseline":
            _judge_baseline(s, sub, result)
        elif sub.kind == "noise":
            _judge_noise(s, sub, result)
        else:
            _judge_candidate_run(s, sub, result)
    _endgame(s)

    update: dict[str, Any] = {
        "log": [e.to_state() for e in s.new_entries],
        "dead_ends": s.dead_ends,
        "events": s.events,
        "submitted": [x.to_state() for x in s.submitted],
        "teams": changed_teams(state, list(s.teams.values())),
        "candidates": [s.candidates[i].to_state() for i in s.touched],
        "inbox": [],
    }
    if s.champion.to_state() != state.get("champion"):
        update["champion"] = s.champion.to_state()
    return update


# -- the judges ---------------------------------------------------------------------------------


def baseline_champion(subs: Sequence[Submission], results: Mapping[str, RunResult]) -> Champion | None:
    """The first champion, once every baseline run is in: the default configuration's mean over
    the seeds that succeeded (``None`` before, or if none did). Seeds in submission order, not
    in the order results came in, so ``tend`` can start explorations on it before ``share``
    has run, and both agree."""
    runs = [results.get(x.experiment_id) for x in subs if x.kind == "baseline"]
    if not runs or any(r is None for r in runs):
        return None
    ok = [r for r in runs if r is not None and r.ok and r.metric is not None]
    if not ok:
        return None
    by_seed = {str(r.seed): float(r.metric) for r in ok if r.metric is not None}
    return Champion(experiment_id=None, config=dict(ok[-1].change.knobs), diff=ok[-1].change.diff,
                    metric=sum(by_seed.values()) / len(by_seed), seeds=[int(k) for k in by_seed], metrics_by_seed=by_seed)


def _judge_baseline(s: _Share, sub: Submission, result: RunResult) -> None:
    entry = s.log(result, sub, "keep" if result.ok else "crash", "default configuration")
    champion = baseline_champion(list(s.subs.values()), {e.result.experiment_id: e.result for e in s.everything})
    if champion is not None and s.champion.metric is None:
        s.champion = champion
        s.event("baseline", metric=s.champion.metric, seeds=s.champion.seeds)
    _remember(s, entry, None)


def _judge_noise(s: _Share, sub: Submission, result: RunResult) -> None:
    entry = s.log(result, sub, "remeasure" if result.ok else "crash", "champion repeated on a new seed",
                  champion_metric=s.champion.metric)
    task = s.ctx.task
    if result.ok and result.metric is not None and s.champion.metric is not None and \
            change_key(task, sub.change) == champion_key(task, s.champion):
        by_seed = {**s.champion.metrics_by_seed, str(result.seed): float(result.metric)}
        s.champion = s.champion.model_copy(update={"metric": sum(by_seed.values()) / len(by_seed),
                                                   "seeds": [int(k) for k in by_seed], "metrics_by_seed": by_seed})
        s.event("remeasure", metric=s.champion.metric, seeds=s.champion.seeds)
    _remember(s, entry, None)


def _judge_candidate_run(s: _Share, sub: Submission, result: RunResult) -> None:
    task, rule = s.ctx.task, s.ctx.settings.promotion
    cand = s.candidates.get(candidate_of(sub)) or _candidate_for(s, sub)
    team = s.teams.get(sub.proposal.team)
    before = s.champion.metric
    if not result.ok or result.metric is None or before is None:
        entry = s.log(result, sub, "crash", f"run failed: {result.status}" + (f" ({result.error[:200]})" if result.error else ""),
                      champion_metric=before)
        s.set_candidate(cand.model_copy(update={"status": "rejected", "note": entry.note}))
        _close(s, entry, team, sub)
        return
    runs = s.runs_of(cand, result)
    values = [float(r.metric) for r in runs if r.metric is not None]
    sigma, dof = s.sigma(result, sub)
    if champion_key(task, cand.base) != champion_key(task, s.champion):
        _judge_stale(s, cand, sub, result, values, sigma, dof, team)
        return
    champ_values = list(s.champion.metrics_by_seed.values())
    j = judge(task.metric, champ_values, values, sigma, dof, rule, screened=cand.rebased_from is not None,
              prior_gains=_prior_gains(s, cand), default=s.default_values(), model=_model_evidence(s, cand, sub, result))
    if j.verdict == "promote":
        old = s.champion
        s.champion = Champion(experiment_id=cand.candidate_id, config=dict(cand.change.knobs), diff=cand.change.diff,
                              metric=sum(values) / len(values), seeds=[r.seed for r in runs],
                              metrics_by_seed={str(r.seed): float(r.metric) for r in runs if r.metric is not None},
                              description=cand.proposal.rationale or cand.change.description)
        entry = s.log(result, sub, "keep", j.reason + ": promoted", gain=j.evidence.gain, champion_metric=before)
        s.set_candidate(cand.model_copy(update={"status": "promoted", "note": entry.note}))
        s.event("promotion", experiment_id=cand.candidate_id, team=sub.proposal.team, metric=s.champion.metric,
                previous=before, reason=j.reason)
        _close(s, entry, team, sub)
        _adopt_steps(s, cand)
        _rebase_open(s, old)
        return
    lead = s.lead(exclude=cand.candidate_id)
    # A step is judged by what it adds to what it built on (the lead it stepped from, else the
    # champion), and it becomes the lead when it beats the current one, as a single agent keeps
    # its best run: the bar is for promotion, and a step too small to clear it alone may still
    # carry the lead there.
    parent = s.candidates.get(cand.parent or "")
    built_on = s.mean_of(parent) if parent is not None and s.runs_of(parent) else before
    own_gain = task.metric.gain(sum(values) / len(values), built_on)
    over_lead = own_gain if lead is None else task.metric.gain(sum(values) / len(values), s.mean_of(lead))
    if sub.kind == "explore":
        leads = over_lead > 0
    else:  # a seed of the lead itself: it stays the lead unless futility closed it
        leads = j.verdict != "reject" and (lead is None or over_lead > 0)
    if not leads:
        moved_on = lead is not None and lead.candidate_id != cand.parent and sub.kind == "explore" and own_gain > 0
        why = f"{j.reason}; {own_gain:+.4g} on what it built on" + (
            f", {over_lead:+.4g} on the lab's lead {lead.candidate_id}" if lead is not None else "")
        entry = s.log(result, sub, "discard", why, gain=own_gain, champion_metric=built_on)
        s.set_candidate(cand.model_copy(update={"status": "rejected", "note": entry.note}))
        _close(s, entry, team, sub)
        if moved_on:
            _carry_to_lead(s, cand, parent, lead)  # type: ignore[arg-type]
        elif lead is not None and lead.candidate_id == cand.parent:
            _maybe_seed(s, lead.model_copy(update={"failed_steps": lead.failed_steps + 1}))
        return
    if lead is not None:
        s.set_candidate(lead.model_copy(update={"status": "superseded", "note": f"{cand.candidate_id} measured better"}))
    reason = j.reason.replace(": open, one more seed", "")
    entry = s.log(result, sub, "pending_confirmation", f"{reason}; {own_gain:+.4g} on what it built on: the lab's lead",
                  gain=own_gain, champion_metric=built_on)
    s.event("near_miss", experiment_id=result.experiment_id, team=sub.proposal.team, gain=j.evidence.gain, reason=j.reason)
    _remember(s, entry, team)
    _maybe_seed(s, cand)


def _model_evidence(s: _Share, cand: Candidate, sub: Submission, result: RunResult) -> ModelEvidence | None:
    """The posterior's evidence for ``cand`` over the champion and the default, with the run
    being judged in the data (``None`` when the rule does not use it or no model could be fitted)."""
    if not s.ctx.settings.promotion.model_evidence:
        return None
    provisional = ExperimentEntry(index=len(s.everything), result=result, proposal=sub.proposal, outcome="discard", kind=sub.kind)
    post = s.posterior(provisional, noise_floor=True)
    if post is None:
        return None
    default = Change(knobs=s.ctx.task.default_config())
    return ModelEvidence(over_champion=post.difference(cand.change, champion_change(s.champion)),
                         over_default=post.difference(cand.change, default))


def _adopt_steps(s: _Share, promoted: Candidate) -> None:
    """Steps taken from a lead that has just been promoted ran on the new champion: they are
    steps from the champion now, judged against it when they return, not rebased."""
    for c in list(s.candidates.values()):
        if c.status == "open" and c.parent == promoted.candidate_id:
            s.set_candidate(c.model_copy(update={"base": s.champion, "parent": None}))


def _carry_to_lead(s: _Share, step: Candidate, parent: Candidate | None, lead: Candidate) -> None:
    """A step that improved on what it built on, while another team's step became the lead:
    its own move (knobs and code increment) is re-applied on the lead and measured there."""
    task = s.ctx.task
    knobs, own_code = direction(step, parent)
    base = as_base(lead, s.runs_of(lead))
    try:
        change = apply_direction(base, knobs, own_code, stack=s.ctx.stack, description=step.proposal.change.description)
    except StackingError:
        return
    if not s.can_start() or any(change_key(task, x.change) == change_key(task, change) for x in s.subs.values()):
        return
    exp_id = f"{step.candidate_id}-on-{lead.candidate_id[-6:]}"
    s.set_candidate(Candidate(candidate_id=exp_id, proposal=step.proposal, change=change, base=s.champion, parent=lead.candidate_id,
                              increments=list(lead.increments) + list(own_code), note=f"{step.candidate_id} re-applied on the lead"))
    seed = base.seeds[0] if base.seeds else (task.seeds[0] if task.seeds else 0)
    s.submit(Submission(experiment_id=exp_id, proposal=step.proposal, seed=seed, kind="explore", change=change,
                        base_metric=s.champion.metric))
    s.event("carried_to_lead", experiment_id=step.candidate_id, team=step.proposal.team, new_experiment_id=exp_id)


def _seedable_now(s: _Share, lead: Candidate) -> list[float] | None:
    """The lead's measured values when its next seed could run now (nothing of it in flight,
    measured against the current champion, short of ``max_seeds``); else ``None``."""
    values = [float(r.metric) for r in s.runs_of(lead) if r.metric is not None]
    busy = any(candidate_of(s.subs[i]) == lead.candidate_id for i in s.in_flight_ids())
    if not values or busy or not seedable(s.ctx.task, lead, s.champion, len(values), s.ctx.settings.promotion):
        return None
    return values


def _maybe_seed(s: _Share, lead: Candidate) -> None:
    """Give the lead its next seed when that could promote it or when steps from it keep
    failing (:func:`~autosci_graph.lab.lead.worth_a_seed`); otherwise teams step on from it."""
    task, rule = s.ctx.task, s.ctx.settings.promotion
    values = _seedable_now(s, lead)
    champ_values = list(s.champion.metrics_by_seed.values())
    if values is not None:
        sigma, dof = noise_estimate(task, s.everything, upper=False)
        if worth_a_seed(task.metric, champ_values, values, sigma, dof, rule, lead.failed_steps, default=s.default_values()) \
                and _next_seeds(s, lead, champion_seed_wanted=len(champ_values) < len(values) + 1):
            lead = lead.model_copy(update={"failed_steps": 0})
    s.set_candidate(lead)


def _endgame(s: _Share) -> None:
    """Near the end of an experiment budget, the lead's seeds come before explorations: an
    exploration this late could not gather the seeds its own verdict needs, and a lead left
    uncertified is lost when the budget ends (the report shows the certified champion). Its
    seeds start once the experiments left are no more than the lead needs to clear the bar at its
    current mean (:func:`~autosci_graph.lab.lead.runs_to_verdict`); a lucky lead regresses on them
    and futility closes it, as at any other time."""
    left = experiments_left(s.ctx, s.state)
    lead = s.lead()
    if left is None or lead is None or not s.ctx.settings.endgame:
        return
    task, rule = s.ctx.task, s.ctx.settings.promotion
    values = _seedable_now(s, lead)
    if values is None:
        return
    sigma, dof = noise_estimate(task, s.everything, upper=False)
    champ_values = list(s.champion.metrics_by_seed.values())
    needed = runs_to_verdict(task.metric, champ_values, values, sigma, dof, rule, default=s.default_values())
    remaining = left - len(s.submitted)
    if needed is None or not 0 < remaining <= needed:
        return
    if _next_seeds(s, lead, champion_seed_wanted=len(champ_values) < len(values) + 1):
        s.event("endgame", experiment_id=lead.candidate_id, runs_needed=needed, experiments_left=remaining)


def _judge_stale(s: _Share, cand: Candidate, sub: Submission, result: RunResult, values: list[float],
                 sigma: float | None, dof: int, team: Team | None) -> None:
    """A run measured against a champion that has since been replaced: evidence for its
    direction against its own base, and a rebase onto the new champion if it still looks good.
    A step that lost to the lead it stepped from hands the rebase to that lead instead."""
    metric = s.ctx.task.metric
    parent = s.candidates.get(cand.parent or "")
    if parent is not None and (parent.status != "open" or champion_key(s.ctx.task, parent.base) != champion_key(s.ctx.task, cand.base)):
        parent = None
    if parent is not None and s.runs_of(parent):
        parent_mean = s.mean_of(parent)
        step_gain = metric.gain(sum(values) / len(values), parent_mean)
        if step_gain <= 0:
            note = f"no better than the lead it stepped from, {parent.candidate_id} ({step_gain:+.4g}); the champion moved meanwhile"
            entry = s.log(result, sub, "discard", note, gain=step_gain, champion_metric=parent_mean)
            s.set_candidate(cand.model_copy(update={"status": "rejected", "note": note}))
            _close(s, entry, team, sub)
            prior = None if parent.base.metric is None else metric.gain(parent_mean, parent.base.metric)
            _rebase(s, parent, prior, parent.base)
            return
        s.set_candidate(parent.model_copy(update={"status": "superseded", "note": f"{cand.candidate_id} measured better"}))
    base = list(cand.base.metrics_by_seed.values()) or [cand.base.metric if cand.base.metric is not None else values[0]]
    ev = evidence(metric, base, values, sigma, dof, s.ctx.settings.promotion)
    if ev.gain > 0 and ev.z > s.ctx.settings.promotion.drop_first_below:
        new_id = _rebase(s, cand, ev.gain, cand.base)
        note = f"the champion moved while it ran ({ev.describe()} over its own base); " + (
            f"rebased as {new_id}" if new_id else s.candidates[cand.candidate_id].note)
        entry = s.log(result, sub, "discard", note, gain=ev.gain, champion_metric=s.champion.metric)
        _remember(s, entry, team)
        if team is not None:
            s.teams[team.team_id] = update_counters(team, entry)
        return
    entry = s.log(result, sub, "discard", f"{ev.describe()} over its own base; the champion moved meanwhile",
                  gain=ev.gain, champion_metric=s.champion.metric)
    s.set_candidate(cand.model_copy(update={"status": "rejected", "note": entry.note}))
    _close(s, entry, team, sub)


# -- candidates -----------------------------------------------------------------------------------


def _candidate_for(s: _Share, sub: Submission) -> Candidate:
    """The candidate a submission belongs to when no branch recorded it (team branches record
    theirs at submission, with the champion they built on)."""
    return Candidate(candidate_id=candidate_of(sub), proposal=sub.proposal, change=sub.change, base=s.champion)


def _prior_gains(s: _Share, cand: Candidate) -> list[float]:
    """A rebased candidate's earlier runs, each as its gain over the champion it ran against."""
    if not cand.rebased_from:
        return []
    gains: list[float] = []
    for c in s.candidates.values():
        if c.candidate_id == cand.candidate_id or (c.candidate_id != cand.rebased_from and c.rebased_from != cand.rebased_from):
            continue
        if c.base.metric is None:
            continue
        gains += [s.ctx.task.metric.gain(float(r.metric), c.base.metric) for r in s.runs_of(c) if r.metric is not None]
    return gains


def _next_seeds(s: _Share, cand: Candidate, *, champion_seed_wanted: bool) -> bool:
    """Submit the open candidate's next seed (paired with the champion's seeds), and a champion
    seed too when the champion has fewer; ``False`` when the budget allows no further seed."""
    if not s.can_start():
        return False
    task = s.ctx.task
    sub = next_confirmation(cand, s.subs.values(), s.champion, task.seeds)
    s.submit(sub)
    cand_seeds = {x.seed for x in s.subs.values() if candidate_of(x) == cand.candidate_id}
    in_flight = s.in_flight_ids()
    champion_busy = any(s.subs[i].kind == "noise" for i in in_flight)
    if champion_seed_wanted and not champion_busy and s.can_start():
        used = set(s.champion.seeds) | {x.seed for x in s.subs.values() if x.kind == "noise" and x.experiment_id in in_flight}
        cseed = next_seed(task.seeds, used, prefer=sorted(cand_seeds))
        exp_id = f"{s.state.get('run_id', 'run')}-champ-{len(s.subs)}-s{cseed}"
        s.submit(_champion_repeat(s.champion, exp_id, cseed, f"balance the comparison with {cand.candidate_id}"))
    return True


def _rebase_open(s: _Share, old: Champion) -> None:
    """After a promotion: re-express every open candidate with nothing in flight on the new
    champion (those with a run in flight are rebased when it returns, its result as evidence)."""
    busy = {candidate_of(s.subs[i]) for i in s.in_flight_ids()}
    # A lead with a step in flight waits for it: the better of the two is rebased (_judge_stale).
    busy |= {p for c in busy if c in s.candidates and (p := s.candidates[c].parent) is not None}
    for cand in list(s.candidates.values()):
        if cand.status != "open" or cand.candidate_id in busy:
            continue
        values = [float(r.metric) for r in s.runs_of(cand) if r.metric is not None]
        gain = None if not values or cand.base.metric is None else s.ctx.task.metric.gain(sum(values) / len(values), cand.base.metric)
        _rebase(s, cand, gain, old)


def _rebase(s: _Share, cand: Candidate, prior_gain: float | None, old: Champion) -> str | None:
    """Re-express ``cand`` on the current champion and submit its first run there; the old
    candidate is closed as rebased (or moot). Returns the new candidate's id."""
    since = shared_ancestor(cand, s.candidates.get(s.champion.experiment_id or ""), s.candidates)
    change, why = rebased_change(s.ctx.task, cand, old, s.champion, s.ctx.stack, since=since)
    if since is not None:
        # Its evidence is what it added to the shared ancestor: the ancestor's own gain is in the
        # new champion already and must not count twice.
        mine, theirs = s.runs_of(cand), s.runs_of(since)
        prior_gain = s.ctx.task.metric.gain(mean_metric(mine), mean_metric(theirs)) if mine and theirs else None
    if change is not None and any(change_key(s.ctx.task, x.change) == change_key(s.ctx.task, change) for x in s.subs.values()):
        change, why = None, "moot: its rebased change was already run"
    if change is None or not s.can_start():
        s.set_candidate(cand.model_copy(update={"status": "moot", "note": why if change is None else "no budget to rebase"}))
        return None
    root = cand.rebased_from or cand.candidate_id
    new_id = f"{root}-rb{sum(1 for c in s.candidates.values() if (c.rebased_from or '') == root) + 1}"
    new = Candidate(candidate_id=new_id, proposal=cand.proposal, change=change, base=s.champion, rebased_from=root,
                    prior_gain=prior_gain, note=why, increments=direction(cand, since)[1])
    s.set_candidate(new)
    s.set_candidate(cand.model_copy(update={"status": "rebased", "note": f"{why} as {new_id}"}))
    seed = s.champion.seeds[0] if s.champion.seeds else (s.ctx.task.seeds[0] if s.ctx.task.seeds else 0)
    s.submit(Submission(experiment_id=new_id, proposal=cand.proposal, seed=seed, kind="explore", change=change,
                        base_metric=s.champion.metric))
    s.event("rebased", experiment_id=cand.candidate_id, team=cand.proposal.team, new_experiment_id=new_id)
    return new_id


def _close(s: _Share, entry: ExperimentEntry, team: Team | None, sub: Submission) -> None:
    """A candidate's verdict is in: dead end if it refutes its direction, team counters, memory."""
    if refutes(entry):  # a discarded noise-level gain is a near miss, not a dead end
        axis = sub.proposal.axis
        s.dead_ends.append(DeadEnd(
            experiment_id=candidate_of(sub), axis=axis, direction=sub.proposal.direction,
            value=sub.proposal.change.knobs.get(axis) if axis else None,
            delta=None if entry.result.metric is None or entry.champion_metric is None else entry.result.metric - entry.champion_metric,
            family=f"{axis}/{sub.proposal.direction}", reason=entry.note,
            outcome="crash" if entry.outcome == "crash" else "discard", context=context_key(s.ctx.task, sub.change, axis),
        ).to_state())
    if team is not None:
        s.teams[team.team_id] = update_counters(team, entry)
    _remember(s, entry, team)
    if sub.kind == "confirm":
        # The exploration it confirmed was remembered as undecided; give it the verdict too.
        first = next((e for e in s.everything if e.result.experiment_id == sub.candidate_of), None)
        if first is not None:
            _remember(s, first.model_copy(update={"outcome": entry.outcome}), team)


def _champion_repeat(champion: Champion, exp_id: str, seed: int, why: str) -> Submission:
    proposal = Proposal(proposal_id=exp_id, author="housekeeping", team="", axis=None, direction=None, change=Change(),
                        rationale=why)
    return Submission(experiment_id=exp_id, proposal=proposal, seed=seed, kind="noise",
                      change=champion_change(champion, "champion, repeated on a new seed"))


def _remember(s: _Share, entry: ExperimentEntry, team: Team | None) -> None:
    if s.ctx.memory is None:
        return
    from autosci_graph.memory.record import MemoryRecord

    outcome = None if entry.outcome in ("pending_confirmation", "remeasure") else entry.outcome
    record = MemoryRecord.from_result(
        entry.result, task=s.ctx.task.name, run_id=s.state.get("run_id", "run"), team=entry.proposal.team or None,
        axis=entry.proposal.axis, direction=entry.proposal.direction,
        hypothesis=(team.hypothesis.statement if team else entry.proposal.rationale),
        champion_metric=entry.champion_metric, minimize=s.ctx.task.metric.minimize, outcome=outcome,
        increment=entry.proposal.change.diff,
    )
    s.ctx.memory.add([record])


def compact(result: RunResult) -> RunResult:
    """The result as the notebook keeps it. The learning curve, provenance and full log stay in
    the experiment's ``result.json``: the state is checkpointed after every step, and a long run
    would otherwise write its whole history over and over."""
    tail = "" if result.ok else result.log_tail[-400:]
    return result.model_copy(update={"curve": [], "provenance": None, "log_tail": tail})




