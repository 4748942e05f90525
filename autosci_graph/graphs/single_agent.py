"""The baseline the lab must beat: one agent in a loop, autoresearch style.

propose → run → keep if strictly better than the champion, else revert → repeat. No teams, no
critique, no memory, no noise estimate: one trajectory on one seed, one experiment at a time.
It shares the lab's state shape, scientist, executor and budgets, so reports and benchmarks
compare the two like for like.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from autosci_graph.graphs.budget import stop_reason
from autosci_graph.graphs.context import DONE, LabContext, emit
from autosci_graph.graphs.state import LabState, Notebook
from autosci_graph.lab.changes import change_key
from autosci_graph.state import Change, Champion, ExperimentEntry, Hypothesis, Proposal, RunResult, Submission, Team

AGENT = "agent"


def _solo_team(ctx: LabContext) -> Team:
    return Team(team_id="solo", members=[AGENT], hypothesis=Hypothesis(
        statement=f"some knob change improves {ctx.task.metric.name}", prediction="a strictly better run",
        falsification="none: the single agent keeps going until the budget is spent", axes=list(ctx.task.knobs)))


def _run(ctx: LabContext, sub: Submission) -> RunResult:
    # Idempotent by experiment id: after a resume a finished run is answered from its saved result.
    return ctx.executor.run(sub.change, seed=sub.seed, experiment_id=sub.experiment_id)


def start(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Run the default configuration once: the first champion."""
    ctx = runtime.context
    if state.get("champion") is not None:
        return {}
    run_id = state.get("run_id") or uuid.uuid4().hex[:8]
    seed = ctx.task.seeds[0] if ctx.task.seeds else 0
    change = Change(knobs=ctx.task.default_config(), description="task default configuration")
    exp_id = f"{run_id}-base-s{seed}"
    proposal = Proposal(proposal_id=exp_id, author="baseline", team="", axis=None, direction=None, change=Change(), rationale="default configuration")
    sub = Submission(experiment_id=exp_id, proposal=proposal, seed=seed, kind="baseline", change=change)
    result = _run(ctx, sub)
    emit({"type": "experiment_finished", "experiment_id": exp_id, "status": result.status, "metric": result.metric})
    entry = ExperimentEntry(index=0, result=result, proposal=proposal, outcome="keep" if result.ok else "crash", kind="baseline")
    champion = Champion(experiment_id=None, config=dict(change.knobs), metric=result.metric if result.ok else None,
                        seeds=[seed] if result.ok else [], metrics_by_seed={str(seed): result.metric} if result.ok and result.metric is not None else {})
    return {"run_id": run_id, "task_name": ctx.task.name, "started_at": time.time(), "champion": champion.to_state(),
            "teams": [_solo_team(ctx).to_state()], "submitted": [sub.to_state()], "log": [entry.to_state()], "rotation": 0}


def step(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Propose one change to the champion, run it, keep it only if strictly better."""
    ctx = runtime.context
    nb = Notebook(state, ctx.task)
    rotation = state.get("rotation", 0) + 1
    team = nb.teams[0]
    reply = ctx.scientist.propose(nb.view(seed=ctx.settings.seed), team=team, author=AGENT, recalled=[], n=1)
    update: dict[str, Any] = {"rotation": rotation, "usage": reply.usage.to_state()}
    if not reply.proposals:
        update["idle_rounds"] = state.get("idle_rounds", 0) + 1
        return update
    d = reply.proposals[0]
    champion = nb.champion
    change = Change(knobs={**champion.config, **d.knobs}, diff=d.diff or champion.diff, description=d.rationale)
    exp_id = f"{state.get('run_id', 'run')}-s{rotation:03d}-{change_key(ctx.task, change)[:6]}"
    proposal = Proposal(proposal_id=exp_id, author=AGENT, team="solo", axis=d.axis, direction=d.direction,
                        change=Change(knobs=d.knobs, diff=d.diff, description=d.rationale), rationale=d.rationale, bold=d.bold)
    sub = Submission(experiment_id=exp_id, proposal=proposal, seed=champion.seeds[0] if champion.seeds else 0, change=change)
    result = _run(ctx, sub)
    emit({"type": "experiment_finished", "experiment_id": exp_id, "status": result.status, "metric": result.metric})
    better = result.ok and result.metric is not None and champion.metric is not None and ctx.task.metric.better(result.metric, champion.metric)
    gain = None if not result.ok or result.metric is None or champion.metric is None else ctx.task.metric.gain(result.metric, champion.metric)
    entry = ExperimentEntry(index=len(nb.log), result=result, proposal=proposal, gain=gain, champion_metric=champion.metric,
                            outcome="keep" if better else ("crash" if not result.ok else "discard"),
                            note="strictly better: kept" if better else "not better: reverted")
    update.update(submitted=[sub.to_state()], log=[entry.to_state()], idle_rounds=0)
    if better:
        metric = float(result.metric)  # type: ignore[arg-type]  # "better" implies a metric
        update["champion"] = Champion(experiment_id=exp_id, config=dict(change.knobs), diff=change.diff, metric=metric,
                                      seeds=[sub.seed], metrics_by_seed={str(sub.seed): metric}, description=d.rationale).to_state()
        update["events"] = [{"type": "promotion", "experiment_id": exp_id, "team": "solo", "metric": result.metric,
                             "previous": champion.metric, "reason": "strictly better", "at": time.time()}]
        emit(update["events"][0])
    return update


def check(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    reason = stop_reason(runtime.context, state)
    if reason:
        emit({"type": "stopping", "reason": reason})
    return {"stop_reason": reason} if reason else {}


def route(state: LabState) -> Literal["step", "__end__"]:
    return DONE if state.get("stop_reason") else "step"


def build_single_agent_graph() -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled single-agent baseline graph (same context and state shape as the lab).

    Example::

        graph = build_single_agent_graph().compile()
        final = graph.invoke({"run_id": "solo"}, context=ctx, config={"recursion_limit": 10_000})
    """
    g = StateGraph(LabState, context_schema=LabContext)
    g.add_node("start", start)
    g.add_node("check", check)
    g.add_node("step", step)
    g.add_edge(START, "start")
    g.add_edge("start", "check")
    g.add_conditional_edges("check", route, ["step", END])
    g.add_edge("step", "check")
    return g
