"""Budgets and stopping. No budget is ever exceeded: an experiment starts only when the worst
case (its full time budget) still fits the device-seconds budget and the deadline.

``can_start`` runs for every dispatch and every confirmation, so it reads the few raw fields it
needs from the state instead of parsing the whole notebook."""

from __future__ import annotations

import math
import time

from autosci_graph.graphs.context import LabContext
from autosci_graph.graphs.state import LabState, Notebook, finished_ids


def _device_seconds(state: LabState) -> float:
    return sum(max(0.0, d["result"]["ended_at"] - d["result"]["started_at"]) for d in state.get("log", []))


def _in_flight(state: LabState) -> int:
    done = finished_ids(state)
    return sum(1 for d in state.get("submitted", []) if d["experiment_id"] not in done)


def experiments_left(ctx: LabContext, state: LabState) -> int | None:
    limit = ctx.settings.max_experiments
    return None if limit is None else max(0, limit - len(state.get("submitted", [])))


def can_start(ctx: LabContext, state: LabState, *, extra_submitted: int = 0, extra_in_flight: int = 0) -> bool:
    """Whether one more experiment may start now without any budget being exceeded."""
    s = ctx.settings
    left = experiments_left(ctx, state)
    if left is not None and left - extra_submitted <= 0:
        return False
    worst = ctx.task.timeout
    if s.max_device_seconds is not None:
        reserved = (_in_flight(state) + extra_in_flight + 1) * worst
        if _device_seconds(state) + reserved > s.max_device_seconds:
            return False
    if s.deadline is not None and time.time() + worst > s.deadline:
        return False
    return not _llm_budget_spent(ctx, state)


def _llm_budget_spent(ctx: LabContext, state: LabState) -> bool:
    """Whether another agent turn could overrun the token or cost budget. The estimate of a
    turn is the largest turn seen so far, so the check stays ahead of the spend."""
    s = ctx.settings
    u = state.get("usage") or {}
    calls = max(1, int(u.get("calls", 0) or 0))
    tokens = int(u.get("input_tokens", 0) or 0) + int(u.get("output_tokens", 0) or 0)
    per_call = tokens / calls if tokens else 0
    # A team turn is a proposal and up to two critiques, each possibly repaired once.
    turn = per_call * 6
    if s.max_tokens is not None and tokens + turn > s.max_tokens:
        return True
    cost = float(u.get("cost_usd", 0.0) or 0.0)
    if s.max_cost_usd is not None and cost + (cost / calls) * 6 > s.max_cost_usd:
        return True
    return False


def stop_reason(ctx: LabContext, state: LabState) -> str | None:
    """Why the lab should stop starting experiments, or ``None`` to go on."""
    s = ctx.settings
    nb = Notebook(state, ctx.task)
    champion = nb.champion
    if champion.metric is not None and math.isfinite(champion.metric) and ctx.task.metric.reached(champion.metric):
        return f"target reached: {ctx.task.metric.name} = {champion.metric:.5g}"
    left = experiments_left(ctx, state)
    if left == 0:
        return f"experiment budget spent ({s.max_experiments})"
    if s.stop_after_no_keep is not None:
        since_keep = 0
        # A keep reached by confirmation is logged on the confirmation run, not on the exploration.
        for e in reversed([e for e in nb.log if e.kind in ("explore", "confirm")]):
            if e.outcome == "keep":
                break
            since_keep += e.kind == "explore"
        if since_keep >= s.stop_after_no_keep:
            return f"no keep in the last {since_keep} explorations"
    if s.max_device_seconds is not None and _device_seconds(state) + ctx.task.timeout > s.max_device_seconds:
        return f"device-seconds budget ({s.max_device_seconds:g} s) cannot fit another experiment"
    if s.deadline is not None and time.time() + ctx.task.timeout > s.deadline:
        return "deadline: another experiment could not finish before it"
    if _llm_budget_spent(ctx, state):
        return "LLM token/cost budget spent"
    if state.get("idle_rounds", 0) >= s.max_idle_rounds:
        return f"no proposal approved in {s.max_idle_rounds} rounds"
    champ_failed = champion.metric is None and any(e.kind == "baseline" for e in nb.log) and not nb.in_flight
    if champ_failed:
        errors = "; ".join(f"{e.result.status}: {(e.result.error or '')[:200]}" for e in nb.log if e.kind == "baseline")
        return f"baseline failed: the default configuration did not produce {ctx.task.metric.name} ({errors})"
    return None
