"""The ``share`` node: every finished run is logged, judged, remembered and broadcast.

Housekeeping is plain code: promotion arithmetic, dead ends, team counters, memory writes, and
confirmation runs for near misses.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from langgraph.runtime import Runtime

from autosci_graph.graphs.budget import can_start
from autosci_graph.graphs.context import LabContext
from autosci_graph.graphs.promotion import Decision, judge_confirmation, judge_exploration
from autosci_graph.graphs.state import LabState, Notebook
from autosci_graph.graphs.teams import update_counters
from autosci_graph.scientists.knowledge import change_key, noise_estimate
from autosci_graph.scientists.rules import refutes
from autosci_graph.state import Change, Champion, DeadEnd, ExperimentEntry, RunRequest, RunResult, Submission, Team

log = logging.getLogger(__name__)


def _confirmation_seed(ctx: LabContext, used: set[int]) -> int:
    """The first task seed the candidate has not run on."""
    return next((s for s in ctx.task.seeds if s not in used), max(used | {0}) + 1)


def _remember(ctx: LabContext, state: LabState, entry: ExperimentEntry, team: Team | None) -> None:
    if ctx.memory is None:
        return
    from autosci_graph.memory.record import MemoryRecord

    outcome = None if entry.outcome in ("pending_confirmation", "remeasure") else entry.outcome
    record = MemoryRecord.from_result(
        entry.result, task=ctx.task.name, run_id=state.get("run_id", "run"), team=entry.proposal.team or None,
        axis=entry.proposal.axis, direction=entry.proposal.direction,
        hypothesis=(team.hypothesis.statement if team else entry.proposal.rationale),
        champion_metric=entry.champion_metric, minimize=ctx.task.metric.minimize, outcome=outcome,
    )
    ctx.memory.add([record])


def share(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Log, judge and share the results ``collect`` brought in."""
    ctx = runtime.context
    nb = Notebook(state, ctx.task)
    subs = {s.experiment_id: s for s in nb.submitted}
    log_entries = nb.log
    champion = nb.champion
    teams = {t.team_id: t for t in nb.teams}
    new_entries: list[ExperimentEntry] = []
    dead_ends: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    submitted: list[Submission] = []  # submitted by this step (also added to ``subs``)
    logged = {e.result.experiment_id for e in log_entries}

    for raw in state.get("inbox", []):
        result = compact(RunResult.model_validate(raw))
        sub = subs.get(result.experiment_id)
        if sub is None or result.experiment_id in logged:
            continue  # not ours, or already shared before a resume
        logged.add(result.experiment_id)
        everything = log_entries + new_entries
        index = len(everything)
        team = teams.get(sub.proposal.team)
        before = champion.metric
        if sub.kind == "baseline":
            entry = ExperimentEntry(index=index, result=result, proposal=sub.proposal, outcome="keep" if result.ok else "crash",
                                    kind="baseline", champion_metric=None, note="default configuration")
            new_entries.append(entry)
            baseline = [e.result for e in everything + [entry] if e.kind == "baseline"]
            if len(baseline) == sum(1 for s in subs.values() if s.kind == "baseline"):
                ok = [r for r in baseline if r.ok and r.metric is not None]
                if ok:
                    champion = Champion(
                        experiment_id=None, config=dict(result.change.knobs), diff=result.change.diff,
                        metric=sum(r.metric for r in ok) / len(ok), seeds=[r.seed for r in ok],  # type: ignore[misc]
                        metrics_by_seed={str(r.seed): r.metric for r in ok if r.metric is not None},
                    )
                    events.append({"type": "baseline", "metric": champion.metric, "seeds": champion.seeds, "at": time.time()})
            _remember(ctx, state, entry, None)
            continue

        if sub.kind == "noise":
            entry = ExperimentEntry(index=index, result=result, proposal=sub.proposal, outcome="remeasure" if result.ok else "crash",
                                    kind="noise", champion_metric=before, note="champion repeated on a new seed")
            new_entries.append(entry)
            if result.ok and result.metric is not None and champion.metric is not None and _same_config(ctx, sub, champion):
                by_seed = {**champion.metrics_by_seed, str(result.seed): result.metric}
                champion = champion.model_copy(update={"metric": sum(by_seed.values()) / len(by_seed), "seeds": [int(k) for k in by_seed],
                                                       "metrics_by_seed": by_seed})
                events.append({"type": "remeasure", "metric": champion.metric, "seeds": champion.seeds, "at": time.time()})
            _remember(ctx, state, entry, None)
            continue

        sigma, dof = noise_estimate(ctx.task, everything + [_provisional(index, result, sub)], upper=False)
        if sub.kind == "confirm" and sub.candidate_of:
            runs = [e.result for e in everything if base_id(subs[e.result.experiment_id]) == sub.candidate_of] + [result]
            decision = judge_confirmation(ctx.task.metric, ctx.settings, champion, runs, sigma, dof,
                                          confirmations_done=len(runs) - 1, candidate_id=sub.candidate_of,
                                          description=sub.proposal.rationale)
        else:
            decision = judge_exploration(ctx.task.metric, ctx.settings, champion, result, sigma, dof, sub.proposal.rationale)
        rebased = None
        if sub.kind == "explore" and decision.new_champion is None and can_start(
                ctx, state, extra_submitted=len(submitted), extra_in_flight=len(submitted)):
            rebased = _rebase(ctx, sub, result, champion, subs)
            if rebased is not None:
                gain_vs_base = ctx.task.metric.gain(result.metric, sub.base_metric)  # type: ignore[arg-type]
                decision = Decision("discard", gain_vs_base, f"the champion moved while it ran (gain {gain_vs_base:+.4g} over its own "
                                    f"base); re-run on the new champion as {rebased.experiment_id}")
        # Confirmations need budget like any experiment; without it a near miss is discarded.
        if decision.confirm and not can_start(ctx, state, extra_submitted=len(submitted), extra_in_flight=len(submitted)):
            decision = Decision("discard", decision.gain, decision.reason + "; no budget left to confirm")
        entry = ExperimentEntry(index=index, result=result, proposal=sub.proposal, outcome=decision.outcome, gain=decision.gain,
                                champion_metric=before, kind=sub.kind, note=decision.reason)
        new_entries.append(entry)
        if decision.new_champion is not None:
            champion = decision.new_champion
            events.append({"type": "promotion", "experiment_id": champion.experiment_id, "team": sub.proposal.team,
                           "metric": champion.metric, "previous": before, "reason": decision.reason, "at": time.time()})
        if decision.confirm:
            base = base_id(sub)
            family = [s for s in subs.values() if base_id(s) == base]
            conf = Submission(experiment_id=f"{base}-c{len(family)}", proposal=sub.proposal,
                              seed=_confirmation_seed(ctx, {s.seed for s in family}), kind="confirm", candidate_of=base, change=sub.change)
            _submit(ctx, conf, subs, submitted)
            events.append({"type": "near_miss", "experiment_id": result.experiment_id, "team": sub.proposal.team,
                           "gain": decision.gain, "reason": decision.reason, "at": time.time()})
        if rebased is not None:
            _submit(ctx, rebased, subs, submitted)
            events.append({"type": "rebased", "experiment_id": result.experiment_id, "team": sub.proposal.team,
                           "new_experiment_id": rebased.experiment_id, "at": time.time()})
        elif refutes(entry):  # a discarded noise-level gain is a near miss, not a dead end
            axis = sub.proposal.axis
            dead_ends.append(DeadEnd(
                experiment_id=base_id(sub), axis=axis, direction=sub.proposal.direction,
                value=sub.proposal.change.knobs.get(axis) if axis else None,
                delta=None if result.metric is None or before is None else result.metric - before,
                family=f"{axis}/{sub.proposal.direction}", reason=decision.reason,
            ).to_state())
        if team is not None and decision.outcome != "pending_confirmation":
            teams[team.team_id] = update_counters(team, entry)
        _remember(ctx, state, entry, team)
        if sub.kind == "confirm" and decision.outcome != "pending_confirmation":
            # The exploration it confirmed was remembered as undecided; give it the verdict too.
            first = next((e for e in everything if e.result.experiment_id == sub.candidate_of), None)
            if first is not None:
                _remember(ctx, state, first.model_copy(update={"outcome": decision.outcome}), team)

    update: dict[str, Any] = {
        "log": [e.to_state() for e in new_entries],
        "dead_ends": dead_ends,
        "events": events,
        "submitted": [x.to_state() for x in submitted],
        "teams": [t.to_state() for t in teams.values()],
        "inbox": [],
    }
    if champion.to_state() != state.get("champion"):
        update["champion"] = champion.to_state()
    return update


def _submit(ctx: LabContext, sub: Submission, subs: dict[str, Submission], submitted: list[Submission]) -> None:
    ctx.executor.submit(RunRequest(experiment_id=sub.experiment_id, change=sub.change, seed=sub.seed))
    subs[sub.experiment_id] = sub
    submitted.append(sub)


def _rebase(ctx: LabContext, sub: Submission, result: RunResult, champion: Champion, subs: dict[str, Submission]) -> Submission | None:
    """A promising exploration that ran on a champion which has since been replaced is re-run
    on the new champion (parallel teams otherwise judge yesterday's base against today's best)."""
    if not result.ok or result.metric is None or sub.base_metric is None or champion.metric is None:
        return None
    p = sub.proposal.change
    current = Change(knobs={**champion.config, **p.knobs}, diff=p.diff or champion.diff, description=sub.change.description)
    key = change_key(ctx.task, current)
    if key == change_key(ctx.task, sub.change) or ctx.task.metric.gain(result.metric, sub.base_metric) <= 0:
        return None  # the champion did not move under it, or it did not beat its own base either
    if any(change_key(ctx.task, s.change) == key for s in subs.values()):
        return None
    return Submission(experiment_id=f"{sub.experiment_id}-rb", proposal=sub.proposal, seed=sub.seed, kind="explore",
                      change=current, base_metric=champion.metric)


def _same_config(ctx: LabContext, sub: Submission, champion: Champion) -> bool:
    return change_key(ctx.task, sub.change) == change_key(ctx.task, Change(knobs=dict(champion.config), diff=champion.diff))


def compact(result: RunResult) -> RunResult:
    """The result as the notebook keeps it. The learning curve, provenance and full log stay in
    the experiment's ``result.json``: the state is checkpointed after every step, and a long run
    would otherwise write its whole history over and over."""
    tail = "" if result.ok else result.log_tail[-400:]
    return result.model_copy(update={"curve": [], "provenance": None, "log_tail": tail})


def base_id(sub: Submission) -> str:
    return sub.candidate_of or sub.experiment_id


def _provisional(index: int, result: RunResult, sub: Submission) -> ExperimentEntry:
    """The result as a log entry before it is judged, so it counts toward the noise estimate."""
    return ExperimentEntry(index=index, result=result, proposal=sub.proposal, outcome="discard", kind=sub.kind)

