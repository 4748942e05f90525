"""Budgets and stopping (lab/budget.py, on the graph state through graphs/budget.py) and the Notebook view (graphs/state.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from lab_helpers import champion, entry, make_synth_task, submission

from autosci_graph.graphs.budget import can_start, experiments_left, llm_turns_left, stop_reason
from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.state import Notebook
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import ExperimentEntry, RunResult
from autosci_graph.tools.inprocess import FunctionExecutor

TASK = make_synth_task(timeout=10.0, target=0.5)


@pytest.fixture
def executor() -> Iterator[FunctionExecutor]:
    ex = FunctionExecutor(lambda change, seed: 1.0, metric_name="loss", slots=2)
    yield ex
    ex.close()


def ctx_with(executor: FunctionExecutor, **settings: Any) -> LabContext:
    return LabContext(task=TASK, executor=executor, scientist=SearchScientist(), settings=LabSettings(**settings))


def timed(e: ExperimentEntry, seconds: float) -> ExperimentEntry:
    return e.model_copy(update={"result": e.result.model_copy(update={"started_at": 100.0, "ended_at": 100.0 + seconds})})


def state(log: list[ExperimentEntry] = (), *, in_flight: int = 0, metric: float | None = 1.0, **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
    """A lab state whose every logged entry was submitted, plus ``in_flight`` more submissions."""
    subs = [submission(e.result.experiment_id, e.kind) for e in log] + [submission(f"fly{i}") for i in range(in_flight)]
    champ = None if metric is None else champion(TASK, metric).to_state()
    return {"champion": champ, "log": [e.to_state() for e in log], "submitted": [s.to_state() for s in subs], **extra}


def discards(n: int, start: int = 0) -> list[ExperimentEntry]:
    return [entry(start + i, "lr", "increase", {"lr": 0.001 * (i + 2)}) for i in range(n)]


# -- Notebook ----------------------------------------------------------------------------------


def test_notebook_in_flight_is_submitted_minus_logged() -> None:
    nb = Notebook(state(discards(2), in_flight=2), TASK)  # type: ignore[arg-type]
    assert [s.experiment_id for s in nb.in_flight] == ["fly0", "fly1"]
    assert len(nb.submitted) == 4 and len(nb.log) == 2


def test_notebook_champion_defaults_to_the_task_defaults() -> None:
    c = Notebook({}, TASK).champion
    assert c.experiment_id is None and c.metric is None and c.config == TASK.default_config()


def test_notebook_view_carries_knowledge_and_in_flight() -> None:
    st = state([entry(0, None, None, {}, kind="baseline", outcome="keep", gain=None, metric=1.0, seed=0),
                entry(1, None, None, {}, kind="baseline", outcome="keep", gain=None, metric=1.2, seed=1)], in_flight=1)
    v = Notebook(st, TASK).view(experiments_left=7)  # type: ignore[arg-type]
    assert v.knowledge.noise_samples == 1 and v.knowledge.untested_axes == list(TASK.knobs)
    assert [p.proposal_id for p in v.in_flight] == ["fly0"] and v.experiments_left == 7


# -- can_start ---------------------------------------------------------------------------------


def test_experiment_budget_counts_submissions(executor: FunctionExecutor) -> None:
    ctx = ctx_with(executor, max_experiments=5)
    st = state(discards(3), in_flight=1)
    assert experiments_left(ctx, st) == 1  # type: ignore[arg-type]
    assert can_start(ctx, st)  # type: ignore[arg-type]
    assert not can_start(ctx, st, extra_submitted=1)  # type: ignore[arg-type]
    assert not can_start(ctx, state(discards(3), in_flight=2))  # type: ignore[arg-type]
    assert experiments_left(ctx_with(executor, max_experiments=None), st) is None  # type: ignore[arg-type]


def test_device_seconds_reserve_the_worst_case_of_every_run_in_flight(executor: FunctionExecutor) -> None:
    # Timeout 10 s. 30 s used; one in flight (10 s reserved) + the new one (10 s) = 50 s.
    log = [timed(e, 15.0) for e in discards(2)]
    assert can_start(ctx_with(executor, max_device_seconds=50), state(log, in_flight=1))  # type: ignore[arg-type]
    assert not can_start(ctx_with(executor, max_device_seconds=49), state(log, in_flight=1))  # type: ignore[arg-type]
    assert not can_start(ctx_with(executor, max_device_seconds=50), state(log, in_flight=1), extra_in_flight=1)  # type: ignore[arg-type]


def test_no_experiment_starts_that_could_end_after_the_deadline(executor: FunctionExecutor) -> None:
    assert can_start(ctx_with(executor, deadline=time.time() + 60), state())  # type: ignore[arg-type]
    assert not can_start(ctx_with(executor, deadline=time.time() + 5), state())  # type: ignore[arg-type]


def test_token_budget_keeps_a_turn_of_headroom(executor: FunctionExecutor) -> None:
    # 1000 tokens over 10 calls: a turn (6 calls) is estimated at 600 tokens.
    usage = {"input_tokens": 800, "output_tokens": 200, "calls": 10, "cost_usd": 0.10}
    assert can_start(ctx_with(executor, max_tokens=1600), state(usage=usage))  # type: ignore[arg-type]
    assert not can_start(ctx_with(executor, max_tokens=1599), state(usage=usage))  # type: ignore[arg-type]
    assert can_start(ctx_with(executor, max_cost_usd=0.16), state(usage=usage))  # type: ignore[arg-type]
    assert not can_start(ctx_with(executor, max_cost_usd=0.15), state(usage=usage))  # type: ignore[arg-type]



def test_a_rounds_branches_together_fit_the_cost_budget(executor: FunctionExecutor) -> None:
    # 0.03 USD a call; 10 calls over 5 turns: a turn is estimated at max(6 calls, the mean turn) = 0.18.
    usage = {"input_tokens": 800, "output_tokens": 200, "calls": 10, "cost_usd": 0.30, "turns": 5}
    assert llm_turns_left(ctx_with(executor, max_cost_usd=0.30 + 3 * 0.18), state(usage=usage)) == 3  # type: ignore[arg-type]
    assert llm_turns_left(ctx_with(executor), state(usage=usage)) is None  # type: ignore[arg-type]
    # Turns that needed repairs (30 calls over 3 turns) are estimated from what they cost: 0.30, not 6 calls' 0.18.
    repaired = {**usage, "calls": 30, "cost_usd": 0.90, "turns": 3}
    assert llm_turns_left(ctx_with(executor, max_cost_usd=0.90 + 0.29), state(usage=repaired)) == 0  # type: ignore[arg-type]
    assert llm_turns_left(ctx_with(executor, max_cost_usd=0.90 + 0.30), state(usage=repaired)) == 1  # type: ignore[arg-type]



def test_revisions_get_only_the_turns_the_round_leaves(executor: FunctionExecutor) -> None:
    # A proposal pass (a proposal and its critiques, at most 6 calls of 0.03 here) is 0.18 USD,
    # and a revision is one more pass, so the branches share what the budget has beyond one pass
    # each: 7 passes left for 2 branches leave 5, two revisions each; 3 for 2 leave none, and a
    # rejected proposal ends the turn instead of spending a third branch's worth.
    from langgraph.runtime import Runtime

    from autosci_graph.graphs.rounds import _revisions
    from autosci_graph.graphs.team import after_critique

    usage = {"input_tokens": 800, "output_tokens": 200, "calls": 10, "cost_usd": 0.30, "turns": 5}
    roomy = ctx_with(executor, max_cost_usd=0.30 + 7 * 0.18 + 0.01)
    tight = ctx_with(executor, max_cost_usd=0.30 + 3 * 0.18 + 0.01)
    assert _revisions(roomy, state(usage=usage), 2) == 2  # type: ignore[arg-type]
    assert _revisions(tight, state(usage=usage), 2) == 0  # type: ignore[arg-type]
    assert _revisions(ctx_with(executor), state(usage=usage), 2) is None  # type: ignore[arg-type]  (no budget)
    rejected = {"revision": 1, "proposals": [{"proposal_id": "p"}], "approved": []}
    assert after_critique({**rejected, "revisions": 0}, Runtime(context=tight)) == "pass_turn"  # type: ignore[arg-type]
    assert after_critique({**rejected, "revisions": 2}, Runtime(context=roomy)) == "propose"  # type: ignore[arg-type]
    assert after_critique({**rejected, "revisions": None}, Runtime(context=roomy)) == "propose"  # type: ignore[arg-type]

# -- stop_reason -------------------------------------------------------------------------------


def test_nothing_stops_a_fresh_lab(executor: FunctionExecutor) -> None:
    assert stop_reason(ctx_with(executor), state()) is None  # type: ignore[arg-type]


def test_stops_when_the_target_is_reached(executor: FunctionExecutor) -> None:
    why = stop_reason(ctx_with(executor), state(metric=0.4))  # type: ignore[arg-type]
    assert why is not None and why.startswith("target reached")
    assert stop_reason(ctx_with(executor), state(metric=0.6)) is None  # type: ignore[arg-type]


def test_stops_when_the_experiment_budget_is_spent(executor: FunctionExecutor) -> None:
    ctx = ctx_with(executor, max_experiments=4, stop_after_no_keep=None)
    assert stop_reason(ctx, state(discards(3))) is None  # type: ignore[arg-type]
    why = stop_reason(ctx, state(discards(3), in_flight=1))  # type: ignore[arg-type]
    assert why is not None and "experiment budget" in why


def test_stops_after_n_explorations_without_a_keep(executor: FunctionExecutor) -> None:
    ctx = ctx_with(executor, stop_after_no_keep=3, max_experiments=None)
    keep = entry(0, "lr", "increase", {"lr": 0.01}, outcome="keep", gain=0.5)
    assert stop_reason(ctx, state([keep] + discards(2, start=1))) is None  # type: ignore[arg-type]
    why = stop_reason(ctx, state([keep] + discards(3, start=1)))  # type: ignore[arg-type]
    assert why is not None and "no keep" in why
    # Repeat runs of the champion are not explorations.
    noise = [entry(4 + i, None, None, {}, kind="noise", outcome="remeasure", gain=None) for i in range(5)]
    assert stop_reason(ctx, state([keep] + discards(2, start=1) + noise)) is None  # type: ignore[arg-type]
    unlimited = ctx_with(executor, stop_after_no_keep=None, max_experiments=None)
    assert stop_reason(unlimited, state(discards(30))) is None  # type: ignore[arg-type]


def test_a_keep_confirmed_on_another_seed_resets_the_no_keep_count(executor: FunctionExecutor) -> None:
    ctx = ctx_with(executor, stop_after_no_keep=3, max_experiments=None)
    log = discards(2) + [entry(2, "width", "increase", {"width": 64}, outcome="pending_confirmation", gain=0.1),
                         entry(3, "width", "increase", {"width": 64}, outcome="keep", gain=0.1, kind="confirm", seed=1),
                         entry(4, "lr", "decrease", {"lr": 5e-4})]
    assert stop_reason(ctx, state(log)) is None  # type: ignore[arg-type]


def test_stops_when_the_device_budget_cannot_fit_another_run(executor: FunctionExecutor) -> None:
    log = [timed(e, 15.0) for e in discards(2)]
    assert stop_reason(ctx_with(executor, max_device_seconds=40), state(log)) is None  # type: ignore[arg-type]
    why = stop_reason(ctx_with(executor, max_device_seconds=39), state(log))  # type: ignore[arg-type]
    assert why is not None and "device-seconds" in why


def test_stops_at_the_deadline(executor: FunctionExecutor) -> None:
    why = stop_reason(ctx_with(executor, deadline=time.time() + 1), state())  # type: ignore[arg-type]
    assert why is not None and why.startswith("deadline")


def test_stops_when_the_llm_budget_is_spent(executor: FunctionExecutor) -> None:
    usage = {"input_tokens": 900, "output_tokens": 100, "calls": 10}
    why = stop_reason(ctx_with(executor, max_tokens=1000), state(usage=usage))  # type: ignore[arg-type]
    assert why is not None and "LLM" in why


def test_stops_after_idle_rounds(executor: FunctionExecutor) -> None:
    ctx = ctx_with(executor, max_idle_rounds=3)
    assert stop_reason(ctx, state(idle_rounds=2)) is None  # type: ignore[arg-type]
    why = stop_reason(ctx, state(idle_rounds=3))  # type: ignore[arg-type]
    assert why is not None and "no proposal approved in 3 rounds" in why


def test_stops_when_the_baseline_failed(executor: FunctionExecutor) -> None:
    failed = entry(0, None, None, {}, kind="baseline", outcome="crash", gain=None, status="crash")
    failed = failed.model_copy(update={"result": RunResult(**{**failed.result.model_dump(), "error": "ImportError: torch"})})
    st = state([failed], metric=None)
    why = stop_reason(ctx_with(executor), st)  # type: ignore[arg-type]
    assert why is not None and why.startswith("baseline failed") and "ImportError" in why
    # While another baseline seed is still running, the lab waits for it.
    assert stop_reason(ctx_with(executor), state([failed], metric=None, in_flight=1)) is None  # type: ignore[arg-type]
