"""The budget rules (:mod:`autosci_graph.lab.budget`) applied to a lab's graph state.

``can_start`` runs for every dispatch and every confirmation, so :func:`spent` reads the few raw
fields it needs from the state instead of parsing the whole notebook."""

from __future__ import annotations

import time

from autosci_graph.graphs.context import LabContext
from autosci_graph.graphs.state import LabState, Notebook, finished_ids
from autosci_graph.lab import budget


def spent(state: LabState) -> budget.Spent:
    """What the run has used so far, from the raw state."""
    done = finished_ids(state)
    u = state.get("usage") or {}
    return budget.Spent(
        submitted=len(state.get("submitted", [])),
        in_flight=sum(1 for d in state.get("submitted", []) if d["experiment_id"] not in done),
        device_seconds=sum(max(0.0, d["result"]["ended_at"] - d["result"]["started_at"]) for d in state.get("log", [])),
        llm_calls=int(u.get("calls", 0) or 0),
        llm_tokens=int(u.get("input_tokens", 0) or 0) + int(u.get("output_tokens", 0) or 0),
        cost_usd=float(u.get("cost_usd", 0.0) or 0.0),
        llm_turns=int(u.get("turns", 0) or 0),
        idle_rounds=state.get("idle_rounds", 0),
    )


def experiments_left(ctx: LabContext, state: LabState) -> int | None:
    return budget.experiments_left(ctx.settings.budget, spent(state))


def can_start(ctx: LabContext, state: LabState, *, extra_submitted: int = 0, extra_in_flight: int = 0) -> bool:
    """Whether one more experiment may start now without any budget being exceeded."""
    return budget.can_start(ctx.settings.budget, spent(state), ctx.task.timeout, time.time(),
                            extra_submitted=extra_submitted, extra_in_flight=extra_in_flight)


def llm_turns_left(ctx: LabContext, state: LabState) -> int | None:
    """Agent turns the token and cost budgets still cover (``None``: unlimited or not yet known)."""
    return budget.llm_turns_left(ctx.settings.budget, spent(state))


def llm_passes_left(ctx: LabContext, state: LabState) -> int | None:
    """Proposal passes (a proposal and its critiques) the token and cost budgets still cover."""
    return budget.llm_passes_left(ctx.settings.budget, spent(state))


def stop_reason(ctx: LabContext, state: LabState) -> str | None:
    """Why the lab should stop starting experiments, or ``None`` to go on."""
    nb = Notebook(state, ctx.task)
    return budget.stop_reason(ctx.task, ctx.settings.budget, spent(state), nb.champion, nb.log, time.time())
