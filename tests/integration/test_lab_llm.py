"""The lab on the LLM path, end to end: ChatOpenAI against a local OpenAI-compatible server.

The server plays every agent from a script keyed on the role in the system prompt. Experiments
are real executor calls (in-process functions) and the memory is real (embeddings + recall).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver

from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.memory.base import InMemoryMemory
from autosci_graph.memory.record import MemoryRecord
from autosci_graph.scientists.llm import LLMScientist
from autosci_graph.state import Change, RunResult
from autosci_graph.task import ResearchTask
from autosci_graph.tools.inprocess import FunctionExecutor
from tests.support.openai_server import OpenAICompatServer

pytestmark = pytest.mark.integration

PRIOR_FAILURE = "loss became NaN at step 40 after the learning rate spike"


def _task() -> ResearchTask:
    return ResearchTask(
        name="llm-synth", root=Path("."), command=("unused",), metric={"name": "loss"}, seeds=(0, 1, 2, 3),
        knobs={"lr": {"type": "float", "low": 1e-4, "high": 1.0, "default": 1e-3, "log": True},
               "width": {"type": "int", "low": 8, "high": 512, "default": 32, "log": True}},
    )


def _loss(change: Change, seed: int) -> float:
    k = change.knobs
    return (math.log10(float(k["lr"])) + 2) ** 2 + 0.01 * seed


class Script:
    """Answers per role. The first proposal answer is malformed (to be repaired); every proposal
    that touches ``width`` is rejected by the critic, so none may ever run."""

    def __init__(self) -> None:
        self.n_propose = 0
        # Cycled: how many proposals a run asks for depends on how fast its champion moves.
        self.lr_values = itertools.cycle([0.004, 0.0025, 0.008, 0.006, 0.005, 0.0045, 0.007, 0.0035, 0.0055, 0.0065])
        # Each at least 10% of width's log range away from 32, so its bold tag is honest.
        self.width_values = itertools.cycle([64, 128, 200, 96, 80, 112, 56, 72])

    def __call__(self, body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        last = body["messages"][-1]["content"]
        if "organizing the lab's teams" in system:
            return json.dumps({"hypotheses": [
                {"statement": "The learning rate is far too low for this budget", "prediction": "loss drops by 1 or more",
                 "falsification": "three lr increases fail to beat the champion", "axes": ["lr"], "promise": 0.9},
                {"statement": "A wider model learns faster per step here", "prediction": "loss drops by 0.1",
                 "falsification": "three width increases fail to beat the champion", "axes": ["width"], "promise": 0.6},
            ], "ranking": [0, 1]})
        if "an experimenter on team" in system:
            self.n_propose += 1
            if self.n_propose == 1:
                return "I think we should raise the learning rate a bit and see."  # prose, not JSON: repaired
            return json.dumps({"proposals": [
                {"axis": "lr", "direction": "increase", "knobs": {"lr": next(self.lr_values)},
                 "rationale": "lr is 10x below the usual range for this budget", "prediction": "loss falls by about 1"},
                {"axis": "width", "direction": "increase", "knobs": {"width": next(self.width_values)}, "bold": True,
                 "rationale": "more width gives more capacity per step", "prediction": "loss falls by 0.1"},
            ]})
        if "reviewing a proposal" in system:
            proposal = last.split("PROPOSAL TO REVIEW:", 1)[1].split("\n\n", 1)[0]
            if "width" in proposal:
                return json.dumps({"approve": False, "reason": "width moves showed no effect above the noise floor (0.01); reject"})
            return json.dumps({"approve": True, "reason": "lr at 1e-3 is far below the measured optimum; effect size 1.0 expected"})
        return "{}"


def test_llm_lab_end_to_end(tmp_path: Path) -> None:
    task = _task()
    memory = InMemoryMemory(task=task.name)
    prior = RunResult(experiment_id="old-7", status="diverged", change=Change(knobs={"lr": 0.9, "width": 32}), seed=0,
                      metric_name="loss", error=PRIOR_FAILURE)
    memory.add([MemoryRecord.from_result(prior, task=task.name, run_id="earlier", axis="lr", direction="increase",
                                         hypothesis="A much higher learning rate trains faster")])
    script = Script()
    with OpenAICompatServer(script, prompt_tokens=100, completion_tokens=20) as server:
        model = ChatOpenAI(model="test-model", base_url=server.base_url, api_key="x", max_retries=0)
        ctx = LabContext(task=task, executor=FunctionExecutor(_loss, metric_name="loss", slots=2),
                         scientist=LLMScientist(model), memory=memory, poll_s=0.5,
                         settings=LabSettings(n_teams=2, max_experiments=8, stop_after_no_keep=None))
        graph = build_lab_graph().compile(checkpointer=InMemorySaver())
        out = graph.invoke({"run_id": "llm"}, context=ctx, config={"configurable": {"thread_id": "llm"}, "recursion_limit": 10_000})
        prompts = [(r["messages"][0]["content"], "\n".join(m["content"] for m in r["messages"][1:])) for r in server.requests]
        served = len(server.requests)

    # Recalled failures reach the proposer.
    proposer_prompts = [h for s, h in prompts if "an experimenter on team" in s]
    assert proposer_prompts and any(PRIOR_FAILURE in h for h in proposer_prompts)

    # A rejected proposal never runs: the critic rejected every width move.
    rejected = [r for r in out["reviews"] if not r["approve"] and r["reviewer"] != "rules"]
    assert rejected, "the scripted critic should have rejected the width proposals"
    explore = [s for s in out["submitted"] if s["kind"] == "explore"]
    assert explore and all("width" not in s["proposal"]["change"]["knobs"] for s in explore)
    # Every critique came from an analyst, never from the experimenter who wrote the proposal.
    assert {r["reviewer"] for r in out["reviews"] if r["reviewer"] != "rules"} <= {"analyst-1", "analyst-2"}
    authors = {s["proposal"]["proposal_id"]: s["proposal"]["author"] for s in explore}
    assert all(authors[r["proposal_id"]] != r["reviewer"] for r in out["reviews"] if r["proposal_id"] in authors)

    # The malformed first answer was repaired (counted as a failed call) and the run went on.
    assert out["usage"]["failed_calls"] >= 1
    assert len(out["submitted"]) == 8 and len(out["log"]) == 8

    # Token usage: every served reply counted, 100 in / 20 out each.
    assert out["usage"]["calls"] == served
    assert out["usage"]["input_tokens"] == 100 * served and out["usage"]["output_tokens"] == 20 * served

    # The lab improved on the default lr (1e-3 → loss ≈ 1).
    assert out["champion"]["metric"] < 0.5
    assert memory.count({"task": task.name}) == 1 + 8
