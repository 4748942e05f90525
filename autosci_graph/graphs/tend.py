"""``tend``: beside a round's thinking branches, every free slot takes approved work at once.

LangGraph ends a superstep when its slowest task ends, so ``collect`` cannot refill a slot while
any team still thinks. ``tend`` is the round's task that does: it brings results in as they finish
and gives each free slot approved work (:mod:`autosci_graph.graphs.refill`): the approved work the
state had at dispatch, and what the branches approve meanwhile, posted on the round's board
(:mod:`autosci_graph.graphs.board`) the moment their turn ends. What it starts and brings in is its
write to the state, so a resume knows it.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from autosci_graph.graphs.context import LabContext
from autosci_graph.graphs.refill import Refiller
from autosci_graph.graphs.rounds import MAX_BRANCHES, plan_round, round_width
from autosci_graph.graphs.share import baseline_champion
from autosci_graph.graphs.state import LabState
from autosci_graph.state import RunRequest, RunResult, Submission


#: How often ``tend`` looks at the round's board while branches think (a posted entry waits at
#: most this long for a free slot; the executor's wait cannot be woken by a post).
BOARD_POLL_S = 0.05


def tend(state: LabState, runtime: Runtime[LabContext], max_branches: int = MAX_BRANCHES) -> dict[str, Any]:
    """Beside the thinking branches, for as long as any of them thinks: bring results in as they
    finish and give every free slot approved work at once (:mod:`autosci_graph.graphs.refill`):
    the work the state had at dispatch, and what the branches approve meanwhile, posted on the
    round's board (:mod:`autosci_graph.graphs.board`) the moment their turn ends. So no slot
    idles while another team is still proposing or critiquing. A slot is free when fewer runs
    are in flight than there are slots, counting the run branches that may still start one.
    Returns once no branch thinks and a result is in (or nothing is left in flight)."""
    ctx = runtime.context
    plan = plan_round(ctx, state, round_width(ctx, max_branches))
    refiller = Refiller(ctx, state, reserved=plan.reserved, busy=set(plan.holding))
    watch = {s.experiment_id: s for s in refiller.nb.in_flight}
    for sub in watch.values():  # idempotent; after a resume the new executor learns them here
        ctx.executor.submit(RunRequest(experiment_id=sub.experiment_id, change=sub.change, seed=sub.seed))
    running = set(watch)
    unresolved = plan.reserved  # run branches holding a slot for the run they may still start
    freed: list[Submission] = []  # finished runs whose slot no approved work took yet
    arrived: list[RunResult] = []

    def fill_free_slots() -> None:
        """Every free slot takes approved work, the team of the run that freed it first; with
        approved work and no free slot, a run branch still thinking gives up its slot (its own
        approved work then waits for the next one: the work in hand runs first)."""
        nonlocal unresolved
        free = ctx.executor.slots - len(running) - unresolved
        while True:
            if free <= 0:
                if not refiller.ready or not ctx.board.take_reservation():
                    return
                unresolved, free = unresolved - 1, free + 1
                refiller.reserved -= 1  # that branch will not start a run: the budget may count on it
            if (refill := refiller.fill(freed[0] if freed else None)) is None:
                return
            if freed:
                freed.pop(0)
            watch[refill.experiment_id] = refill
            running.add(refill.experiment_id)
            free -= 1

    while True:
        posts = ctx.board.take()
        refiller.offer(posts.queued, posted=True)
        for d in posts.started:
            sub = Submission.model_validate(d)
            watch[sub.experiment_id] = sub
            running.add(sub.experiment_id)
        unresolved = posts.reserved
        fill_free_slots()
        ctx.board.waiting(len(refiller.ready))
        thinking = ctx.board.thinking
        if not thinking and (arrived or not running):
            break
        if not running:
            ctx.board.wait(ctx.poll_s)
            continue
        for r in ctx.executor.wait(sorted(running), timeout=min(ctx.poll_s, BOARD_POLL_S) if thinking else ctx.poll_s):
            # One result at a time, each freed slot filled before the next result counts: approved
            # work ages by the results in when its slot frees, never by how many runs happened to
            # end within one wait (two runs ending together made every entry stale at once).
            running.discard(r.experiment_id)
            arrived.append(r)
            refiller.finished(watch[r.experiment_id])
            freed.append(watch[r.experiment_id])
            if refiller.nb.champion.metric is None:
                # Teams draft while the baseline runs: once it is in, explorations start on the
                # first champion at once, not after the drafting branches end and ``share`` has run.
                results = {e.result.experiment_id: e.result for e in refiller.nb.log} | {a.experiment_id: a for a in arrived}
                if (first := baseline_champion(refiller.nb.submitted, results)) is not None:
                    refiller.first_champion(first)
            fill_free_slots()
    return {"inbox": [r.to_state() for r in arrived], **refiller.update()}
