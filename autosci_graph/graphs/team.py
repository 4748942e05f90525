"""The team subgraph: recall → propose → critique ⟲ revise → submit.

One branch per team runs this in parallel (``Send``). It only *submits* the approved experiment
to the executor and returns: the lab's ``collect`` node waits for results, so a team whose
experiment finishes early is dispatched again while slower experiments keep their slots.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypedDict
import operator

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from autosci_graph.graphs.acts import Act, Steps, Together, adrive, both, drive
from autosci_graph.graphs.context import LabContext
from autosci_graph.graphs.recall import recall_failures
from autosci_graph.graphs.state import LabState, Notebook, merge_awaiting
from autosci_graph.lab.changes import StackingError, change_key, change_to_run, champion_key, has_code
from autosci_graph.lab.critique import auto_review
from autosci_graph.lab.retry import TurnFailure
from autosci_graph.scientists.base import ProposeReply, RecalledMemory
from autosci_graph.scientists.providers import ProviderError
from autosci_graph.lab.teams import team_experimenters
from autosci_graph.state import (
    Candidate, Champion, Change, Proposal, Review, RunRequest, Submission, Team, Usage, add_usage, merge_ready,
)
from autosci_graph.tools.precheck import precheck


class TeamState(TypedDict, total=False):
    """State of one team branch. ``lab`` is a read-only snapshot of the lab state."""

    team_id: str
    #: The experimenter whose slot this branch fills (it holds what the branch starts); ``None``
    #: when the team thinks ahead: no slot is free for it, and everything it approves waits as its
    #: approved work for the next slot to free (``autosci_graph.graphs.refill``).
    holder: str | None
    #: Its position in the round's dispatch: branches claim configurations in this order.
    turn: int
    #: How many branches of the same team come before it in this round: they draft from the
    #: same state at the same time, so this one should draft something else.
    sibling: int
    #: Turns this branch took before this one in the same round (it thinks ahead again while a
    #: slower branch still thinks), and what they drafted: not in the lab state yet, so shown
    #: to the proposer as in flight.
    again: int
    drafted: list[dict[str, Any]]
    #: Revisions the LLM budget allows this branch (``None``: ``LabSettings.max_revisions``).
    revisions: int | None
    lab: LabState
    recalled: list[dict[str, Any]]
    proposals: list[dict[str, Any]]
    feedback: list[dict[str, Any]]
    revision: int
    approved: list[dict[str, Any]]
    # -- written back to the lab (reducers there) --
    submitted: Annotated[list[dict[str, Any]], operator.add]
    candidates: Annotated[list[dict[str, Any]], operator.add]
    reviews: Annotated[list[dict[str, Any]], operator.add]
    events: Annotated[list[dict[str, Any]], operator.add]
    usage: Annotated[dict[str, Any], add_usage]
    failed_turns: Annotated[list[dict[str, Any]], operator.add]
    queued: Annotated[list[dict[str, Any]], merge_ready]
    awaiting: Annotated[list[dict[str, Any]], merge_awaiting]


class TeamOutput(TypedDict, total=False):
    submitted: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    reviews: list[dict[str, Any]]
    events: list[dict[str, Any]]
    usage: dict[str, Any]
    failed_turns: list[dict[str, Any]]
    queued: list[dict[str, Any]]
    awaiting: list[dict[str, Any]]


def _notebook(state: TeamState, ctx: LabContext) -> Notebook:
    return Notebook(state["lab"], ctx.task)


def _team(state: TeamState, nb: Notebook) -> Team:
    return next(t for t in nb.teams if t.team_id == state["team_id"])


def _proposer(team: Team, holder: str | None, revision: int, rotation: int) -> str:
    """The branch's experimenter writes its first draft; a revision passes to the next one, for
    a second pair of eyes. A spare slot's branch (or an old checkpoint's) starts from the
    round's turn. A team without experimenters uses its analyst."""
    experimenters = team_experimenters(team) or team.members or [team.team_id]
    start = experimenters.index(holder) if holder in experimenters else rotation
    return experimenters[(start + revision) % len(experimenters)]


def _reviewer(author: str, team: Team, nb: Notebook, rotation: int) -> str:
    """An analyst of another team when there is one (fresh eyes), never the author."""
    others = [m for t in nb.active_teams if t.team_id != team.team_id for m in t.members if m.startswith("analyst")]
    own = [m for m in team.members if m.startswith("analyst") and m != author]
    pool = [m for m in others + own if m != author] or [f"critic-of-{author}"]
    return pool[rotation % len(pool)]


def recall(state: TeamState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Recall the past failures most similar to what this team is about to try."""
    ctx = runtime.context
    nb = _notebook(state, ctx)
    team = _team(state, nb)
    text = f"{team.hypothesis.statement} Axes: {', '.join(team.hypothesis.axes)}."
    hits = recall_failures(ctx.memory, text, task=ctx.task.name, k=ctx.settings.recall_k)
    return {"recalled": [h.model_dump(mode="json") for h in hits], "revision": 0, "feedback": []}


def propose(state: TeamState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """The team's proposer turns its hypothesis into concrete, tagged changes."""
    return drive(_propose(state, runtime.context))


async def apropose(state: TeamState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """:func:`propose` for ``ainvoke``: the scientist's ``apropose`` is awaited."""
    return await adrive(_propose(state, runtime.context))


def _propose(state: TeamState, ctx: LabContext) -> Steps[dict[str, Any]]:
    nb = _notebook(state, ctx)
    team = _team(state, nb)
    rotation = state["lab"].get("rotation", 0)
    author = _proposer(team, state.get("holder"), state.get("revision", 0), rotation)
    feedback = [Review.model_validate(r) for r in state.get("feedback", [])]
    recalled = [RecalledMemory.model_validate(r) for r in state.get("recalled", [])]
    view = nb.view(feedback=feedback, seed=ctx.settings.seed, on_lead=True, siblings_drafting=state.get("sibling", 0))
    if state.get("drafted"):
        view = view.model_copy(update={"in_flight": view.in_flight + [Proposal.model_validate(p) for p in state["drafted"]]})
    try:
        reply: ProposeReply = yield Act(ctx.scientist, "propose", {"view": view, "team": team, "author": author, "recalled": recalled,
                                                               "n": ctx.settings.proposals_per_turn})
    except ProviderError as exc:
        # A failed call is a failed turn: the team passes this round, the lab goes on.
        failure = TurnFailure(role="propose", kind="error", rotation=rotation, reason=str(exc), agent=author, team=team.team_id)
        return {"proposals": [], "usage": _usage_of(exc), "failed_turns": [failure.to_state()],
                "events": [_failure_event(failure)]}
    rev = state.get("revision", 0)
    # The branch's turn keeps the ids of two branches of one team in one round apart.
    branch = f"{team.team_id}-b{state.get('turn', 0)}" if ctx.settings.experimenters_per_team > 1 else team.team_id
    if state.get("again"):
        branch += f"x{state['again']}"
    proposals = [
        Proposal(
            proposal_id=f"{state['lab'].get('run_id', 'run')}-r{rotation:03d}-{branch}-v{rev}-{i}",
            author=author, team=team.team_id, axis=d.axis, direction=d.direction,
            change=Change(knobs=d.knobs, diff=d.diff, description=d.rationale),
            rationale=d.rationale, prediction=d.prediction, bold=d.bold,
            what_is_different=d.what_is_different, falsification_test=d.falsification_test, revision=rev,
        ).to_state()
        for i, d in enumerate(reply.proposals)
    ]
    events = [{"type": "dropped_answer", "team": team.team_id, "agent": author, "reason": r, "at": time.time()} for r in reply.dropped]
    # A turn begins with its first proposal; the budget estimates a turn from the turns counted.
    usage = {**reply.usage.to_state(), "turns": int(rev == 0)}
    update: dict[str, Any] = {"proposals": proposals, "usage": usage, "events": events}
    if not proposals and reply.dropped:
        # Nothing usable came back. A reply with no proposal and nothing dropped is a scientist
        # passing on purpose (nothing new to try): an idle turn, not a failed one.
        failure = TurnFailure(role="propose", kind="invalid", rotation=rotation, agent=author, team=team.team_id,
                              reason="; ".join(reply.dropped))
        update["failed_turns"] = [failure.to_state()]
        events.append(_failure_event(failure))
    return update


def critique(state: TeamState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Every proposal is reviewed before it costs compute: the automatic rules, then a critic
    who is not its author. A review without a reason, or no review, means it does not run."""
    return drive(_critique(state, runtime.context))


async def acritique(state: TeamState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """:func:`critique` for ``ainvoke``: the critic's ``acritique`` is awaited."""
    return await adrive(_critique(state, runtime.context))


def _critique(state: TeamState, ctx: LabContext) -> Steps[dict[str, Any]]:
    nb = _notebook(state, ctx)
    team = _team(state, nb)
    view = nb.view(seed=ctx.settings.seed, on_lead=True)
    rotation = state["lab"].get("rotation", 0)
    reviews: list[Review] = []
    usage: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    proposals = [Proposal.model_validate(raw) for raw in state.get("proposals", [])]
    # The rules and the code check first; the critics of what passes are asked all at once
    # (each proposal's review is independent of the others'), so a turn waits for its slowest
    # critique instead of their sum.
    ruled: list[Review | None] = []
    asks: list[Act] = []
    for p in proposals:
        recalled = recall_failures(ctx.memory, p.rationale or p.change.description or str(p.change.knobs), task=ctx.task.name, k=ctx.settings.recall_k)
        review = refused = check_code(ctx, p, view.champion)
        if refused is not None:
            events.append({"type": "patch_refused", "team": team.team_id, "proposal_id": p.proposal_id, "rule": refused.rule,
                           "reason": refused.reason[:500], "at": time.time()})
        candidate = None if review is not None else change_to_run(view.champion, p.change, stack=ctx.stack)
        if review is None:
            review = auto_review(p, view, recalled, ctx.settings.rules, candidate=candidate)
        if review is None:
            asks.append(Act(ctx.reviewer, "critique", {"view": view, "proposal": p, "reviewer": _reviewer(p.author, team, nb, rotation),
                                                       "recalled": recalled}))
        ruled.append(review)
    answers = iter(zip(asks, (yield Together(tuple(asks))) if asks else []))
    for p, review in zip(proposals, ruled):
        if review is None:
            ask, reply = next(answers)
            reviewer: str = ask.kwargs["reviewer"]
            failure: TurnFailure | None = None
            if isinstance(reply, ProviderError):
                usage = add_usage(usage, _usage_of(reply))
                failure = TurnFailure(role="critique", kind="error", rotation=rotation, reason=str(reply), agent=reviewer,
                                      team=team.team_id)
            elif isinstance(reply, BaseException):
                raise reply
            else:
                usage = add_usage(usage, reply.usage.to_state())
                events.extend({"type": "dropped_answer", "team": team.team_id, "agent": reviewer, "reason": r, "at": time.time()}
                              for r in reply.dropped)
                if reply.review is None or not reply.review.reason.strip():
                    failure = TurnFailure(role="critique", kind="invalid", rotation=rotation, agent=reviewer, team=team.team_id,
                                          reason="; ".join(reply.dropped) or "empty answer")
                else:
                    review = Review(proposal_id=p.proposal_id, reviewer=reviewer, approve=reply.review.approve,
                                    reason=reply.review.reason)
            if failure is not None:
                # Unreviewed means it does not run: critique before compute has no exception.
                review = Review(proposal_id=p.proposal_id, reviewer=reviewer, approve=False, rule="no_review",
                                reason=f"the critic gave no usable review: {failure.reason}")
                failures.append(failure.to_state())
                events.append(_failure_event(failure))
        assert review is not None  # every path above gives a review: the rules', the precheck's or a critic's
        reviews.append(review)
    approved = [raw for raw, r in zip(state.get("proposals", []), reviews) if r.approve]
    rejected = [r.to_state() for r in reviews if not r.approve]
    return {
        "reviews": [r.to_state() for r in reviews],
        "approved": approved,
        "feedback": state.get("feedback", []) + rejected,
        "revision": state.get("revision", 0) + (0 if approved else 1),
        "usage": usage,
        "events": events,
        "failed_turns": failures,
    }


def _usage_of(exc: ProviderError) -> dict[str, Any]:
    """What a failed request used before it failed: its calls always count against the budget."""
    return exc.usage.to_state() if isinstance(exc.usage, Usage) else {"calls": 1, "failed_calls": 1}


def _failure_event(failure: TurnFailure) -> dict[str, Any]:
    return {"type": "turn_failed", "role": failure.role, "kind": failure.kind, "team": failure.team,
            "agent": failure.agent, "reason": failure.reason[:500], "at": time.time()}


def check_code(ctx: LabContext, p: Proposal, champion: Champion) -> Review | None:
    """Check before compute, costing no slot: the code increment stacks on the champion's files,
    the edited Python compiles, the task's smoke command passes. A refusal goes back to the
    author as a review; it never runs and never counts against the team's hypothesis."""
    if not has_code(p.change):
        return None
    try:
        change = change_to_run(champion, p.change, stack=ctx.stack)
    except StackingError as exc:
        return Review(proposal_id=p.proposal_id, reviewer="precheck", approve=False, rule="patch_does_not_apply",
                      reason=f"The code change does not apply to the champion's files: {exc}")
    # The smoke command is contained as the executor contains runs (``--sandbox none`` included).
    with ctx.smoke_lock:
        problem = precheck(ctx.task, change, data_dir=getattr(ctx.executor, "data_dir", None),
                           sandbox=getattr(ctx.executor, "sandbox", None))
    if problem is None:
        return None
    return Review(proposal_id=p.proposal_id, reviewer="precheck", approve=False, rule="patch_check_failed",
                  reason=f"The code change failed its check before compute: {problem}")


def after_critique(state: TeamState, runtime: Runtime[LabContext]) -> Literal["submit", "propose", "pass_turn"]:
    if state.get("approved"):
        return "submit"
    share, most = state.get("revisions"), runtime.context.settings.max_revisions
    allowed = most if share is None else min(most, share)
    if state.get("revision", 0) <= allowed and state.get("proposals"):
        return "propose"
    return "pass_turn"


def pass_turn(state: TeamState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Nothing to run this round: let the branches after this one claim."""
    with runtime.context.turn(state.get("turn", 0)):
        return {}


def submit(state: TeamState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Hand the approved proposal to the executor (it starts as soon as a slot is free); the
    other approved proposals wait as the team's approved work, for a slot that frees while the
    team is not thinking (``tend``)."""
    ctx = runtime.context
    nb = _notebook(state, ctx)
    approved = [Proposal.model_validate(p) for p in state["approved"]]
    # The bold move is owed once per cycle: run it when the team's last run was not bold.
    last = next((s.proposal for s in reversed(nb.submitted) if s.proposal.team == state["team_id"] and s.kind == "explore"), None)
    bold = [p for p in approved if p.bold]
    first = bold[0] if bold and (last is None or not last.bold) else approved[0]
    ranked = [first] + [p for p in approved if p is not first]
    if state.get("holder") is None:  # thinking ahead
        return {"queued": _posted(ctx, _replace_queued(state, ctx, ranked))}
    # A team steps from the lab's lead when there is one (autosci_graph.lab.lead); the
    # candidate is still judged against the champion.
    base, _ = nb.lead()
    with ctx.turn(state.get("turn", 0)):
        if not ctx.board.keep_slot(state.get("turn", 0)):
            # ``tend`` gave this branch's slot to approved work while it thought: what it
            # approved waits for the next slot to free, as a thinking-ahead branch's work does.
            return {"queued": _posted(ctx, _replace_queued(state, ctx, ranked))}
        chosen, change, key = _claim(ctx, base, ranked)
        if chosen is None:
            return {"events": [{"type": "duplicate_skipped", "team": state["team_id"], "at": time.time(),
                                "reason": "another team claimed the same configuration this round"}]}
        if ctx.settings.human_approval:  # it waits for a human verdict in the lab's ``approve`` node
            return {"awaiting": [{"proposal_id": chosen.proposal_id, "team": state["team_id"], "holder": state.get("holder"),
                                  "turn": state.get("turn", 0), "proposal": chosen.to_state(), "change": change.to_state(),
                                  "key": key, "status": "awaiting"}]}
        sub, candidate = start_exploration(ctx, nb, chosen, change, key, holder=state.get("holder"))
    # What the team approved but did not run replaces its earlier approved work (the latest
    # thinking, on the latest results, is what a freed slot should get).
    ctx.board.post(started=[sub.to_state()], turn=state.get("turn", 0))
    return {"submitted": [sub.to_state()], "candidates": [candidate.to_state()],
            "queued": _posted(ctx, _replace_queued(state, ctx, [p for p in ranked if p is not chosen]))}


def _posted(ctx: LabContext, queued: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Post the turn's approved work on the round's board (``tend`` gives it to a slot that frees
    while slower branches still think, :mod:`autosci_graph.graphs.board`); the state gets it too."""
    ctx.board.post(queued=[q for q in queued if q.get("status") == "ready"])
    return queued


def _replace_queued(state: TeamState, ctx: LabContext, approved: list[Proposal]) -> list[dict[str, Any]]:
    """The team's approved work after this turn: what it approved and did not run replaces what
    it had (the latest thinking, on the latest results, is what a freed slot should get)."""
    if not ctx.refills:
        return []
    nb = _notebook(state, ctx)
    base, _ = nb.lead()
    stale = [dict(q, status="replaced") for q in state["lab"].get("queued", []) if q["team"] == state["team_id"]]
    return stale + [queue_entry(p, ctx, base, len(nb.log)) for p in approved]


def start_exploration(ctx: LabContext, nb: Notebook, chosen: Proposal, change: Change, key: str,
                      holder: str | None) -> tuple[Submission, Candidate]:
    """Submit an approved, claimed exploration and the candidate it tests. Its first seed is one
    the base ran on, so the comparison is paired from the start."""
    champion = nb.champion
    base, lead = nb.lead()
    seed = base.seeds[0] if base.seeds else (ctx.task.seeds[0] if ctx.task.seeds else 0)
    exp_id = f"{chosen.proposal_id.rsplit('-v', 1)[0]}-{key[:6]}"
    ctx.executor.submit(RunRequest(experiment_id=exp_id, change=change, seed=seed))
    sub = Submission(experiment_id=exp_id, proposal=chosen, seed=seed, kind="explore", change=change,
                     base_metric=champion.metric, holder=holder)
    increments = (list(lead.increments) if lead else []) + ([chosen.change.diff or ""] if has_code(chosen.change) else [])
    candidate = Candidate(candidate_id=exp_id, proposal=chosen, change=change, base=champion,
                          parent=lead.candidate_id if lead else None, increments=increments)
    return sub, candidate


def queue_entry(p: Proposal, ctx: LabContext, base: Champion, results: int) -> dict[str, Any]:
    """An approved proposal kept for later, valid while the lab builds on the same ``base`` and
    fewer than ``slots`` results have come in since (``results``: how many were in then)."""
    return {"proposal_id": p.proposal_id, "team": p.team, "proposal": p.to_state(),
            "base": champion_key(ctx.task, base), "status": "ready", "results": results}


def _claim(ctx: LabContext, base: Champion, ranked: list[Proposal]) -> tuple[Proposal | None, Change, str]:
    """The first approved proposal whose change no earlier branch of this round claimed."""
    for p in ranked:
        try:
            change = change_to_run(base, p.change, stack=ctx.stack, description=p.rationale)
        except StackingError:
            continue  # its code increment no longer applies to what it builds on; the next one may
        key = change_key(ctx.task, change)
        if ctx.claim(key):
            return p, change, key
    return None, Change(), ""


def build_team_graph() -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled team subgraph. Compile it with ``checkpointer=False`` (the lab checkpoints)."""
    g = StateGraph(TeamState, context_schema=LabContext, output_schema=TeamOutput)
    g.add_node("recall", recall)
    g.add_node("propose", both(propose, apropose))
    g.add_node("critique", both(critique, acritique))
    g.add_node("submit", submit)
    g.add_node("pass_turn", pass_turn)
    g.add_edge(START, "recall")
    g.add_edge("recall", "propose")
    g.add_edge("propose", "critique")
    g.add_conditional_edges("critique", after_critique, ["submit", "propose", "pass_turn"])
    g.add_edge("submit", END)
    g.add_edge("pass_turn", END)
    return g
