"""The human critic in process (autosci_graph/graphs/approval.py): the real lab graph with a
checkpointer stops at ``interrupt()`` before a proposal costs compute and resumes on
``Command(resume=verdict)``: approve, reject with a reason, edit (and an edit the rules refuse)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lab_helpers import make_synth_task, synth_loss
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from autosci_graph.graphs.approval import parse_verdict
from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.scientists.base import CritiqueReply, LabView, ProposeReply, RecalledMemory
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Proposal
from autosci_graph.tools.inprocess import FunctionExecutor

TASK = make_synth_task()


class CountingScientist(SearchScientist):
    """SearchScientist that counts its propose and critique calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = {"propose": 0, "critique": 0}
        self._lock = threading.Lock()

    def propose(self, view: LabView, **kwargs: Any) -> ProposeReply:
        with self._lock:
            self.calls["propose"] += 1
        return super().propose(view, **kwargs)

    def critique(self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> CritiqueReply:
        with self._lock:
            self.calls["critique"] += 1
        return super().critique(view, proposal=proposal, reviewer=reviewer, recalled=recalled)


class Lab:
    """A lab run under human approval, driven one interrupt at a time."""

    def __init__(self, settings: LabSettings, *, slots: int = 1, synchronous: bool = False,
                 scientist: SearchScientist | None = None) -> None:
        self.executor = FunctionExecutor(synth_loss(0.02), metric_name="loss", slots=slots, synchronous=synchronous)
        self.scientist = scientist or SearchScientist()
        self.ctx = LabContext(task=TASK, executor=self.executor, scientist=self.scientist, settings=settings, poll_s=0.2)
        self.graph = build_lab_graph().compile(checkpointer=InMemorySaver())
        self.config = {"configurable": {"thread_id": "t"}, "recursion_limit": 10_000}

    def start(self) -> dict[str, Any]:
        return dict(self.graph.invoke({"run_id": "h"}, config=self.config, context=self.ctx))

    def answer(self, verdict: Any) -> dict[str, Any]:
        return dict(self.graph.invoke(Command(resume=verdict), config=self.config, context=self.ctx))

    def to_the_end(self, decide: Callable[[dict[str, Any]], Any], out: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        asked = []
        while "__interrupt__" in out:
            payload = out["__interrupt__"][0].value
            asked.append(payload)
            out = self.answer(decide(payload))
        return out, asked

    def close(self) -> None:
        self.executor.close()


@pytest.fixture
def lab() -> Iterator[Lab]:
    run = Lab(LabSettings(n_teams=1, max_experiments=7, stop_after_no_keep=None, human_approval=True))
    yield run
    run.close()


def explored(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The finished explorations by proposal id."""
    return {e["proposal"]["proposal_id"]: e for e in state.get("log", []) if e["kind"] == "explore"}


def human_reviews(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in state["reviews"] if r["reviewer"] == "human"]


def test_the_run_stops_at_the_interrupt_with_the_proposal_and_approve_runs_it(lab: Lab) -> None:
    out = lab.start()
    assert "__interrupt__" in out
    payload = out["__interrupt__"][0].value
    assert payload["type"] == "approval" and (payload["position"], payload["of"]) == (1, 1)
    assert payload["team"] == "t1" and payload["axis"] in TASK.knobs and payload["direction"]
    assert payload["knobs"] and payload["rationale"] and payload["diff"] is None
    assert set(payload["knobs"].items()) <= set(payload["config"].items())
    # The critique it passed: the rules, then a critic who is not its author.
    assert payload["checks"] == ["automatic rules: passed"]
    assert [r["approve"] for r in payload["reviews"]] == [True] and payload["reviews"][0]["reviewer"] != payload["author"]
    # Nothing of it has started: only the baseline is in flight or done.
    state = lab.graph.get_state(lab.config).values
    assert {s["kind"] for s in state["submitted"]} == {"baseline"}
    assert lab.executor.max_running <= 1

    out = lab.answer({"action": "approve"})
    final, _ = lab.to_the_end(lambda p: "approve", out)
    run = explored(final)[payload["proposal_id"]]
    assert run["result"]["change"]["knobs"] == payload["config"]
    assert {"proposal_id": payload["proposal_id"], "reviewer": "human", "approve": True,
            "reason": "approved by a human", "rule": None} in final["reviews"]
    assert final["stop_reason"] == "experiment budget spent (7)"


def test_a_rejected_proposal_never_runs_its_reason_is_recorded_and_the_lab_goes_on(lab: Lab) -> None:
    out = lab.start()
    first = out["__interrupt__"][0].value
    out = lab.answer({"action": "reject", "reason": "too risky before the noise is known"})
    final, asked = lab.to_the_end(lambda p: "approve", out)

    assert first["proposal_id"] not in explored(final)
    assert all(s["proposal"]["proposal_id"] != first["proposal_id"] for s in final["submitted"])
    assert {"proposal_id": first["proposal_id"], "reviewer": "human", "approve": False,
            "reason": "too risky before the noise is known", "rule": "human_rejected"} in final["reviews"]
    verdicts = [e for e in final["events"] if e["type"] == "human_verdict"]
    assert verdicts[0]["action"] == "reject" and verdicts[0]["reason"] == "too risky before the noise is known"
    # The lab went on: later proposals were asked about, approved and run, to the exact budget.
    assert asked and all(p["proposal_id"] in explored(final) for p in asked)
    assert final["stop_reason"] == "experiment budget spent (7)" and len(final["submitted"]) == 7


def test_an_edit_runs_the_edited_change_and_an_edit_the_rules_refuse_does_not_run(lab: Lab) -> None:
    out = lab.start()
    first = out["__interrupt__"][0].value
    out = lab.answer({"action": "edit", "knobs": {"width": 128}, "reason": "try it wider too"})
    second = out["__interrupt__"][0].value
    assert second["proposal_id"] != first["proposal_id"]
    # lr = 5 is outside the task's range (1e-4 .. 1): the automatic rules refuse the edit.
    out = lab.answer({"action": "edit", "knobs": {"lr": 5.0}})
    final, _ = lab.to_the_end(lambda p: "approve", out)

    runs = explored(final)
    edited = runs[first["proposal_id"] + "-edited"]
    assert edited["result"]["change"]["knobs"] == {**first["config"], "width": 128}
    assert first["proposal_id"] not in runs
    assert any(r["proposal_id"] == first["proposal_id"] and r["rule"] == "human_edited" for r in human_reviews(final))

    refused = [r for r in final["reviews"] if r["proposal_id"] == second["proposal_id"] + "-edited"]
    assert [(r["approve"], r["rule"]) for r in refused] == [(False, "invalid_knob")]
    assert "outside the task's search space" in refused[0]["reason"]
    assert second["proposal_id"] not in runs and second["proposal_id"] + "-edited" not in runs
    assert all(s["change"]["knobs"].get("lr") != 5.0 for s in final["submitted"])
    event = next(e for e in final["events"] if e["type"] == "human_verdict" and e["proposal_id"] == second["proposal_id"])
    assert event["refused"] == "invalid_knob" and "experiment_id" not in event


def test_an_answer_that_is_not_a_verdict_is_asked_again_with_the_error(lab: Lab) -> None:
    out = lab.start()
    first = out["__interrupt__"][0].value
    out = lab.answer({"action": "reject"})  # no reason
    again = out["__interrupt__"][0].value
    assert again["proposal_id"] == first["proposal_id"] and "a rejection needs a reason" in again["error"]
    assert {s["kind"] for s in lab.graph.get_state(lab.config).values["submitted"]} == {"baseline"}
    out = lab.answer("approve")
    assert first["proposal_id"] in {s["proposal"]["proposal_id"] for s in lab.graph.get_state(lab.config).values["submitted"]}


def _decisions(final: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(e["result"]["experiment_id"], sorted(e["result"]["change"]["knobs"].items()), e["result"]["seed"],
             e["outcome"], e["result"]["metric"]) for e in final["log"]]


def test_approving_everything_repeats_no_scientist_call_and_decides_as_without_approval() -> None:
    """Resume re-runs only the approve node: with every proposal approved the lab makes the decisions
    it makes without approval, with exactly as many scientist calls (none repeated on resume)."""
    base = LabSettings(n_teams=2, max_experiments=14, stop_after_no_keep=None, seed=3)
    plain = Lab(base, slots=2, synchronous=True, scientist=CountingScientist())
    gated = Lab(LabSettings(**{**base.__dict__, "human_approval": True}), slots=2, synchronous=True,
                scientist=CountingScientist())
    try:
        expected = plain.start()
        assert "__interrupt__" not in expected
        final, asked = gated.to_the_end(lambda p: {"action": "approve"}, gated.start())
    finally:
        plain.close()
        gated.close()
    assert len(asked) >= 3 and any(p["of"] == 2 for p in asked)  # two teams: two questions in one node
    assert _decisions(final) == _decisions(expected)
    assert gated.scientist.calls == plain.scientist.calls  # type: ignore[attr-defined]


def test_the_async_path_stops_and_resumes_the_same_way() -> None:
    run = Lab(LabSettings(n_teams=1, max_experiments=5, stop_after_no_keep=None, human_approval=True))

    async def main() -> tuple[dict[str, Any], list[str]]:
        out = await run.graph.ainvoke({"run_id": "h"}, config=run.config, context=run.ctx)
        asked = []
        while "__interrupt__" in out:
            asked.append(out["__interrupt__"][0].value["proposal_id"])
            out = await run.graph.ainvoke(Command(resume={"action": "approve"}), config=run.config, context=run.ctx)
        return out, asked

    try:
        final, asked = asyncio.run(main())
    finally:
        run.close()
    assert asked and set(asked) <= set(explored(final))
    assert final["stop_reason"] == "experiment budget spent (5)"


@pytest.mark.parametrize("answer, error", [
    ({"action": "maybe"}, "Input should be"),
    ({"action": "edit"}, "an edit needs knobs or a diff"),
    ({"action": "approve", "knobs": {"lr": 0.1}}, "belong to an edit"),
    ({"action": "approve", "extra": 1}, "Extra inputs"),
])
def test_malformed_verdicts_are_refused_with_the_reason(answer: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_verdict(answer)


def test_approval_off_adds_no_step_and_no_state() -> None:
    run = Lab(LabSettings(n_teams=2, max_experiments=8, stop_after_no_keep=None), slots=2)
    try:
        final = run.start()
        history = list(run.graph.get_state_history(run.config))
    finally:
        run.close()
    assert "__interrupt__" not in final and not final.get("awaiting")
    # How many supersteps a run takes depends on how often freed slots are refilled; a few at least.
    assert len(history) > 3 and all("approve" not in s.next for s in history)
    assert not [r for r in final["reviews"] if r["reviewer"] == "human"]
