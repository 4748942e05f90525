"""The AutoScientists lab graph: self-organizing teams in parallel branches.

::

    START → organize ─┬─ team-0 … team-k (the round's branches) ─┐
                      ├─ tend (refills freed slots meanwhile) ────┤
                      ├─ collect ←────────────────────────────────┘
                      └─ END            collect → share → organize

* ``organize`` — housekeeping and self-organization: the baseline runs, stop checks, falsified
  teams dissolve, regroup triggers, new teams formed by vote around the best hypotheses;
* ``team-i`` — the round's branches (:mod:`autosci_graph.graphs.rounds`): one per free
  experimenter, plus teams thinking ahead; each runs the team subgraph (recall → propose →
  critique ⟲ revise → submit) on the lab state it reads as its input;
* ``tend`` — beside them while any thinks (:mod:`autosci_graph.graphs.tend`): every free slot
  takes approved work at once, the state's and what the branches post as they finish;
* ``approve`` — only with ``LabSettings.human_approval``: after the branches, a human's verdict on
  each proposal they chose, through ``interrupt()`` (:mod:`autosci_graph.graphs.approval`);
* ``collect`` — waits until *any* experiment finishes, so a freed slot is refilled at once
  instead of idling behind the slowest team;
* ``share`` — logs, judges (noise-aware promotion), remembers and broadcasts every result.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from autosci_graph.graphs.acts import Act, Pause, Steps, adrive, both, drive
from autosci_graph.graphs.approval import approve
from autosci_graph.graphs.budget import can_start, stop_reason
from autosci_graph.graphs.context import DONE, LabContext, emit
from autosci_graph.graphs.share import share
from autosci_graph.graphs.state import LabState, Notebook, changed_teams
from autosci_graph.graphs.refill import Refiller, fill_free_slots
from autosci_graph.graphs.rounds import MAX_BRANCHES, merge_turns, next_turn, plan_round, round_width
from autosci_graph.graphs.tend import tend
from autosci_graph.graphs.team import build_team_graph
from autosci_graph.lab.candidates import next_confirmation
from autosci_graph.lab.changes import champion_change
from autosci_graph.lab.lead import seedable
from autosci_graph.lab.knowledge import noise_estimate
from autosci_graph.lab.promotion import is_deterministic
from autosci_graph.lab.retry import (
    TurnFailure, failed_rounds_after, formation_delay, give_up_reason, retry_wait_s, round_outcome,
)
from autosci_graph.lab.teams import (
    can_dissolve, choose_drafts, exhausted_axes, is_falsified, members_for, new_team, regroup_reason,
)
from autosci_graph.scientists.base import LabView, OrganizeReply
from autosci_graph.scientists.providers import ProviderError
from autosci_graph.state import Change, Champion, Proposal, RunRequest, RunResult, Submission, Usage

logger = logging.getLogger(__name__)


def _baseline(ctx: LabContext, state: LabState, run_id: str) -> list[Submission]:
    """Repeat runs of the default configuration: the first champion and the first noise sample.
    Like any experiment, a baseline run starts only if the budgets can take its worst case."""
    seeds = list(ctx.task.seeds) or [0]
    while len(seeds) < ctx.settings.baseline_seeds:
        seeds.append(max(seeds) + 1)
    change = Change(knobs=ctx.task.default_config(), description="task default configuration")
    subs: list[Submission] = []
    for seed in seeds[: ctx.settings.baseline_seeds]:
        if not can_start(ctx, state, extra_submitted=len(subs), extra_in_flight=len(subs)):
            break
        exp_id = f"{run_id}-base-s{seed}"
        proposal = Proposal(proposal_id=exp_id, author="baseline", team="", axis=None, direction=None, change=Change(),
                            rationale="default configuration")
        subs.append(Submission(experiment_id=exp_id, proposal=proposal, seed=seed, kind="baseline", change=change))
        ctx.executor.submit(RunRequest(experiment_id=exp_id, change=change, seed=seed))
    return subs


def _assess_round(ctx: LabContext, state: LabState) -> tuple[int, TurnFailure | None]:
    """The failed-round count after the round that just ended, and its last failed turn."""
    rotation = state.get("rotation", 0)
    if rotation == 0:
        return 0, None  # no round has run yet
    failures = [TurnFailure.model_validate(f) for f in state.get("failed_turns", []) if f["rotation"] == rotation]
    started = any(d["kind"] == "explore" for d in state.get("submitted", [])[state.get("round_start", 0):])
    outcome = round_outcome(failures, progressed=started or bool(state.get("round_formed")))
    count = failed_rounds_after(state.get("failed_rounds", 0), outcome)
    if outcome == "failed":
        logger.warning("round %d failed (%d in a row): %s", rotation, count,
                    "; ".join(f"{f.role} {f.kind}: {f.reason[:200]}" for f in failures))
    return count, failures[-1] if failures else None


def _form_teams(ctx: LabContext, view: LabView, needed: int, rotation: int) -> Steps[tuple[OrganizeReply | None, TurnFailure | None, dict[str, Any]]]:
    """Ask the scientist for hypotheses. A provider failure (HTTP error, time-out) is a failed
    turn, not a failed run: its usage still counts and formation is retried in a later round."""
    try:
        reply: OrganizeReply = yield Act(ctx.scientist, "organize", {"view": view, "n_teams": needed, "agents": ctx.settings.roster()})
    except ProviderError as exc:
        used = exc.usage.to_state() if isinstance(exc.usage, Usage) else {}
        return None, TurnFailure(role="organize", kind="error", rotation=rotation, reason=str(exc), agent="organizer"), used
    return reply, None, reply.usage.to_state()


def organize(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Housekeeping and self-organization before each dispatch."""
    return drive(_organize(state, runtime.context))


async def aorganize(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """:func:`organize` for ``ainvoke``: the scientist's ``aorganize`` is awaited."""
    return await adrive(_organize(state, runtime.context))


def _organize(state: LabState, ctx: LabContext) -> Steps[dict[str, Any]]:
    s = ctx.settings
    ctx.clear_claims()  # claims guard one round of parallel branches, not the whole run
    failed_rounds, last_failure = _assess_round(ctx, state)
    rotation = state.get("rotation", 0) + 1
    update: dict[str, Any] = {"rotation": rotation, "failed_rounds": failed_rounds, "round_formed": False}
    events: list[dict[str, Any]] = []
    if state.get("champion") is None:
        run_id = state.get("run_id") or uuid.uuid4().hex[:8]
        update.update(run_id=run_id, task_name=ctx.task.name, started_at=time.time(),
                      champion=Champion(experiment_id=None, config=ctx.task.default_config()).to_state())
        baseline = _baseline(ctx, state, run_id)
        update["submitted"] = [sub.to_state() for sub in baseline]
        if not baseline:
            update["stop_reason"] = "the budgets cannot fit one run of the default configuration"
        state = {**state, **update}  # type: ignore[typeddict-item]
    update["round_start"] = len(state.get("submitted", []))
    reason = state.get("stop_reason") or stop_reason(ctx, state) or give_up_reason(failed_rounds, s.max_failed_rounds, last_failure)
    if reason:
        if not state.get("stop_reason"):
            emit({"type": "stopping", "reason": reason})
        update["stop_reason"] = reason
        return update

    nb = Notebook(state, ctx.task)
    rules = s.team_rules
    log = nb.log
    teams = nb.teams
    for i, t in enumerate(teams):
        if t.status == "active" and is_falsified(t, rules):
            teams[i] = t.model_copy(update={"status": "falsified"})
            events.append({"type": "team_falsified", "team": t.team_id, "hypothesis": t.hypothesis.statement,
                           "support": t.support, "refute": t.refute, "at": time.time(), "at_experiment": len(log)})
    # The last formation, from explicit state: regroups wait out a cool-down after it.
    since = max((t.formed_at_experiment for t in teams), default=0)
    active = [t for t in teams if t.status == "active"]
    why = regroup_reason(log, since, s.n_teams, rules) if active else None
    if why and any(can_dissolve(t, rules) for t in active):
        teams = [t.model_copy(update={"status": "dissolved"}) if t.status == "active" and can_dissolve(t, rules) else t for t in teams]
        events.append({"type": "regroup", "reason": why, "at": time.time(), "at_experiment": len(log)})
        active = [t for t in teams if t.status == "active"]
    needed = s.n_teams - len(active)
    # After failed formations the teams the lab has go on working and formation waits (backoff);
    # with no team at all there is nothing else to do, so it is retried every round, after a wait.
    due = not active or rotation >= state.get("next_formation_at", 0)
    if needed > 0 and due:
        if not active and not nb.in_flight:
            wait = retry_wait_s(failed_rounds, s.retry_wait_s, s.retry_wait_max_s)
            if s.deadline is not None:
                wait = min(wait, max(0.0, s.deadline - time.time()))
            if wait > 0:
                emit({"type": "retry_wait", "seconds": wait, "failed_rounds": failed_rounds})
                yield Pause(wait)
        # The teams as they stand after this step's falsifications and regroup.
        view = nb.view(seed=s.seed).model_copy(update={"teams": teams})
        reply, failure, used = yield from _form_teams(ctx, view, needed, rotation)
        update["usage"] = used
        formed = 0
        if reply is not None:
            taken = {t.hypothesis.axes[0] for t in active if t.hypothesis.axes}
            drafts = choose_drafts(reply, needed, view.knowledge.untested_axes, exhausted_axes(log, rules), taken)
            used_slots = {i for i in range(s.n_teams) for t in active if t.members == members_for(i, rules)}
            free_slots = [i for i in range(s.n_teams) if i not in used_slots]
            for draft, slot in zip(drafts, free_slots):
                team = new_team(draft, f"t{len(teams) + 1}", members_for(slot, rules), len(log))
                teams.append(team)
                formed += 1
                events.append({"type": "team_formed", "team": team.team_id, "hypothesis": draft.statement, "axes": draft.axes,
                               "author": draft.author, "at": time.time(), "at_experiment": len(log)})
            for r in reply.dropped:
                events.append({"type": "dropped_answer", "agent": "organizer", "reason": r, "at": time.time()})
            if not formed:
                why_not = "; ".join(reply.dropped) or "no posted hypothesis could lead a team (axes taken, exhausted or unknown)"
                failure = TurnFailure(role="organize", kind="invalid", rotation=rotation, reason=why_not, agent="organizer")
        if formed:
            update.update(round_formed=True, formation_failures=0, next_formation_at=0)
        else:
            k = state.get("formation_failures", 0) + 1
            # With teams at work, formation backs off; with none, the next round retries (after a wait).
            delay = formation_delay(k, s.formation_backoff_rounds) if active else 1
            update.update(formation_failures=k, next_formation_at=rotation + delay)
        if failure is not None:
            update["failed_turns"] = [failure.to_state()]
            events.append({"type": "turn_failed", "role": "organize", "kind": failure.kind, "reason": failure.reason[:500],
                           "next_formation_at": update["next_formation_at"], "at": time.time()})
            logger.warning("organize failed (%s), formation retried in round %d: %s", failure.kind,
                         update["next_formation_at"], failure.reason[:300])
    update["teams"] = changed_teams(state, teams)
    if ctx.refills:
        filled = fill_free_slots(ctx, {**state, "teams": [t.to_state() for t in teams]})  # type: ignore[typeddict-item]
        update.update(submitted=update.get("submitted", []) + filled["submitted"], candidates=filled["candidates"],
                      queued=filled["queued"])
        events += filled["events"]  # emitted by the refiller
    update["events"] = events
    for e in events:
        if e["type"] != "slot_refilled":
            emit(e)
    return update


def dispatch(state: LabState, runtime: Runtime[LabContext], max_branches: int = MAX_BRANCHES) -> list[str] | Literal["collect", "__end__"]:
    """The round's team branches (``team-0`` ...) and ``tend``, as :func:`plan_round` plans
    them; with none, wait for results (or stop)."""
    ctx = runtime.context
    plan = plan_round(ctx, state, round_width(ctx, max_branches))
    if plan.branches:
        ctx.board.begin(len(plan.branches), reserved=plan.reserved)
        return [branch_node(i) for i in range(len(plan.branches))] + (["tend"] if plan.tend else [])
    nb = Notebook(state, ctx.task)
    # No team (formation failed and is retried next round) is not the end of the run: the round
    # ends in ``collect``, which spends the slot on the champion while the lab waits.
    if state.get("stop_reason") or nb.champion.metric is None:
        return "collect" if nb.in_flight else DONE
    return "collect" if nb.in_flight or not nb.active_teams else DONE


def branch_node(i: int) -> str:
    return f"team-{i}"


def _lab_snapshot(state: LabState) -> dict[str, Any]:
    # What a team reads; reviews, events and usage are the lab's own records, not inputs to a turn.
    return {k: v for k, v in state.items() if k not in ("inbox", "reviews", "events", "usage", "awaiting")}


def after_branch(state: LabState, runtime: Runtime[LabContext]) -> Literal["approve", "collect"]:
    """Under human approval the round's chosen proposals wait for their verdicts first."""
    return "approve" if runtime.context.settings.human_approval else "collect"


def _branch(i: int, team_graph: Any, max_branches: int) -> Any:
    """Node ``team-i``: the i-th branch of the round's plan runs the team subgraph on the lab
    state it reads as its input (a branch the plan no longer has does nothing)."""
    def branch_input(state: LabState, ctx: LabContext) -> dict[str, Any] | None:
        plan = plan_round(ctx, state, round_width(ctx, max_branches))
        if i >= len(plan.branches):
            return None
        b = plan.branches[i]
        sibling = sum(1 for other in plan.branches[:i] if other.team_id == b.team_id)
        return {"team_id": b.team_id, "holder": b.holder, "turn": i, "sibling": sibling, "revisions": plan.revisions,
                "lab": _lab_snapshot(state)}

    # The branch thinks until its node returns, however it ends (``tend`` waits for that).
    def team_branch(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
        ctx = runtime.context
        try:
            payload = branch_input(state, ctx)
            if payload is None:
                return {}
            out = dict(team_graph.invoke(payload, context=ctx))
            turns = 1
            while (again := next_turn(ctx, state, i, payload, out, turns)) is not None:
                out = merge_turns(out, dict(team_graph.invoke(again, context=ctx)))
                turns += 1
            return out
        finally:
            ctx.board.done(i)

    async def ateam_branch(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
        ctx = runtime.context
        try:
            payload = await asyncio.to_thread(branch_input, state, ctx)
            if payload is None:
                return {}
            out = dict(await team_graph.ainvoke(payload, context=ctx))
            turns = 1
            while (again := await asyncio.to_thread(next_turn, ctx, state, i, payload, out, turns)) is not None:
                out = merge_turns(out, dict(await team_graph.ainvoke(again, context=ctx)))
                turns += 1
            return out
        finally:
            ctx.board.done(i)

    team_branch.__name__ = f"team_{i}"
    return both(team_branch, ateam_branch)


def collect(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Wait until at least one experiment in flight has finished; bring its result in."""
    ctx = runtime.context
    nb = Notebook(state, ctx.task)
    in_flight = nb.in_flight
    update: dict[str, Any] = {"idle_rounds": 0}
    if not in_flight:
        # Every team passed: the slot goes to the lead's or the champion's next seed (_idle_run).
        # A round whose agents failed is counted by ``failed_rounds`` (its own limit and message),
        # not as idle: teams that could not think did not pass.
        rotation = state.get("rotation", 0)
        failed = any(f["rotation"] == rotation for f in state.get("failed_turns", []))
        update["idle_rounds"] = state.get("idle_rounds", 0) + (0 if failed else 1)
        if state.get("stop_reason") or nb.champion.metric is None or not can_start(ctx, state):
            return {**update, "inbox": []}
        sub = _idle_run(ctx, state, nb)
        if sub is None:
            return {**update, "inbox": []}
        update["submitted"] = [sub.to_state()]
        in_flight = [sub]
    # Idempotent: after a resume this re-queues what the crashed process had in flight, and a
    # run that had already finished is answered from its saved result instead of running again.
    for sub in in_flight:
        ctx.executor.submit(RunRequest(experiment_id=sub.experiment_id, change=sub.change, seed=sub.seed))
    ids = [sub.experiment_id for sub in in_flight]
    done: list[RunResult] = []
    if state.get("inbox"):
        # ``tend`` brought results in beside the thinking branches: take what else has
        # finished by now, without waiting for more.
        done = ctx.executor.wait(ids, timeout=0)
    while not done:
        done = ctx.executor.wait(ids, timeout=ctx.poll_s)
    for r in done:
        emit({"type": "experiment_finished", "experiment_id": r.experiment_id, "status": r.status, "metric": r.metric})
    if ctx.refills and not state.get("stop_reason"):
        # Each free slot takes approved work now, not after share, organize and a team's turn;
        # a slot is free when fewer runs are still in flight than there are slots.
        refiller = Refiller(ctx, {**state, "submitted": state.get("submitted", []) + update.get("submitted", [])})
        subs = {s.experiment_id: s for s in in_flight}
        # One result at a time, its slot filled before the next counts (as ``tend`` does):
        # approved work ages by the results in when its slot frees, not by how many ended in one wait.
        for r in done:
            refiller.after(subs[r.experiment_id])
        for _ in range(ctx.executor.slots - len(in_flight)):  # slots no run held
            if refiller.fill() is None:
                break
        more = refiller.update()
        update.update(candidates=more["candidates"], queued=more["queued"], events=more["events"])
        update["submitted"] = update.get("submitted", []) + more["submitted"]
    return {**update, "inbox": [r.to_state() for r in done]}


def _idle_run(ctx: LabContext, state: LabState, nb: Notebook) -> Submission | None:
    """What a slot runs when every team passed. The lead's next seed first: every team steps
    from it, and when nothing around it is worth a run its mean is the thing to sharpen (a lucky
    lead regresses, and the teams' base moves). Else the champion on a new seed, which sharpens
    both the noise floor and the champion's mean and lets tired families cool."""
    sigma, dof = noise_estimate(ctx.task, nb.log, upper=False)
    if is_deterministic(sigma, dof):
        return None
    _, lead = nb.lead()
    if lead is not None and seedable(ctx.task, lead, nb.champion, len(nb.runs_of(lead)), ctx.settings.promotion):
        return next_confirmation(lead, nb.submitted, nb.champion, ctx.task.seeds)
    champion = nb.champion
    if len(champion.seeds) >= ctx.settings.max_champion_seeds:
        return None
    used = set(champion.seeds) | {s.seed for s in nb.submitted if s.kind == "noise"}
    seed = next((x for x in ctx.task.seeds if x not in used), max(used | {0}) + 1)
    exp_id = f"{state.get('run_id', 'run')}-remeasure-{len(nb.submitted)}-s{seed}"
    proposal = Proposal(proposal_id=exp_id, author="housekeeping", team="", axis=None, direction=None, change=Change(),
                        rationale="repeat the champion on a new seed")
    return Submission(experiment_id=exp_id, proposal=proposal, seed=seed, kind="noise",
                      change=champion_change(champion, "champion, repeated on a new seed"))


def build_lab_graph(max_branches: int = MAX_BRANCHES) -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled lab graph; compile it with the checkpointer you want.

    Example::

        from langgraph.checkpoint.memory import InMemorySaver
        from autosci_graph import LabContext, SearchScientist, build_lab_graph, load_task
        from autosci_graph.tools.local import LocalExecutor

        task = load_task("examples/gpt_bpb")
        graph = build_lab_graph().compile(checkpointer=InMemorySaver())
        ctx = LabContext(task=task, executor=LocalExecutor(task, "runs/demo"), scientist=SearchScientist())
        final = graph.invoke({"run_id": "demo"}, context=ctx,
                             config={"configurable": {"thread_id": "demo"}, "recursion_limit": 10_000})
        print(final["champion"])
    """
    g = StateGraph(LabState, context_schema=LabContext)
    g.add_node("organize", both(organize, aorganize))
    team_graph = build_team_graph().compile(checkpointer=False, name="team")
    for i in range(max_branches):
        g.add_node(branch_node(i), _branch(i, team_graph, max_branches))

    def tend_node(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
        return tend(state, runtime, max_branches)

    def route(state: LabState, runtime: Runtime[LabContext]) -> list[str] | Literal["collect", "__end__"]:
        return dispatch(state, runtime, max_branches)

    g.add_node("tend", tend_node)
    g.add_node("approve", approve)
    g.add_node("collect", collect)
    g.add_node("share", share)
    g.add_edge(START, "organize")
    g.add_conditional_edges("organize", route, [branch_node(i) for i in range(max_branches)] + ["tend", "collect", END])
    for i in range(max_branches):
        g.add_conditional_edges(branch_node(i), after_branch, ["approve", "collect"])
    g.add_edge("approve", "collect")
    g.add_edge("tend", "collect")
    g.add_edge("collect", "share")
    g.add_edge("share", "organize")
    return g
