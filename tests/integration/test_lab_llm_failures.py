"""A lab whose model server answers badly for a while: failed rounds are logged and counted, the lab
goes on, forms its teams later and spends its whole budget; a server that never recovers stops the
lab after ``max_failed_rounds`` with a message that says why.

ChatOpenAI talks to a local OpenAI-compatible server (127.0.0.1, a free port); experiments are real
in-process executor calls.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver

from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.scientists.llm import LLMScientist
from autosci_graph.state import Change
from autosci_graph.task import ResearchTask
from autosci_graph.tools.inprocess import FunctionExecutor
from tests.support.openai_server import OpenAICompatServer, ScriptedReply

pytestmark = pytest.mark.integration

TOKENS_IN, TOKENS_OUT = 100, 20
SLOW_S, TIMEOUT_S = 8.0, 2.0  # generous: a loaded 2-core machine is slow to answer too


def _task() -> ResearchTask:
    return ResearchTask(
        name="llm-flaky", root=Path("."), command=("unused",), metric={"name": "loss"}, seeds=(0, 1, 2, 3, 4, 5),
        knobs={"lr": {"type": "float", "low": 1e-4, "high": 1.0, "default": 1e-3, "log": True},
               "width": {"type": "int", "low": 8, "high": 512, "default": 32, "log": True}},
    )


def _loss(change: Change, seed: int) -> float:
    return (math.log10(float(change.knobs["lr"])) + 2) ** 2 + 0.01 * seed


ORGANIZE_OK = json.dumps({"hypotheses": [
    {"statement": "The learning rate is far too low for this budget", "prediction": "loss drops by 1 or more",
     "falsification": "three lr increases fail to beat the champion", "axes": ["lr"], "promise": 0.9},
    {"statement": "A wider model learns faster per step here", "prediction": "loss drops by 0.1",
     "falsification": "three width increases fail to beat the champion", "axes": ["width"], "promise": 0.6},
], "ranking": [0, 1]})


class FlakyServer:
    """Plays every role, badly at first: the first organize round gets prose and then a wrong
    schema, the second an HTTP 500; the first proposal request an HTTP 500, the second a reply
    slower than the client's time-out; the first critique an HTTP 500. Then it answers well."""

    def __init__(self) -> None:
        self.seen = {"organize": 0, "propose": 0, "critique": 0}
        self.timed_out_tokens = 0

    def __call__(self, body: dict[str, Any]) -> str | ScriptedReply:
        system = body["messages"][0]["content"]
        role = ("organize" if "organizing the lab's teams" in system else
                "propose" if "an experimenter on team" in system else "critique")
        self.seen[role] += 1
        n = self.seen[role]
        if role == "organize":
            junk: list[str | ScriptedReply] = [
                "Let me think about which teams would be best here. Probably the learning rate.",
                json.dumps({"teams": ["lr", "width"]}),  # well-formed JSON, wrong schema
                ScriptedReply("upstream model crashed", status=500),
            ]
            return junk[n - 1] if n <= len(junk) else ORGANIZE_OK
        if role == "propose":
            if n == 1:
                return ScriptedReply("overloaded", status=503)
            good = self._good_proposals(body, n)
            if n == 2:
                self.timed_out_tokens += TOKENS_IN
                return ScriptedReply(good, delay_s=SLOW_S)  # the client gives up first
            return good
        if n == 1:
            return ScriptedReply("critic backend unavailable", status=500)
        return json.dumps({"approve": True, "reason": "lr at 1e-3 is far below the measured optimum; effect size 1.0 expected"})


    @staticmethod
    def _good_proposals(body: dict[str, Any], n: int) -> str:
        """A step up or down (alternating) from the champion the prompt shows, on lr and width: every
        answer is honest about its direction, and no axis and direction is mined too often."""
        prompt = "\n".join(m["content"] for m in body["messages"])
        lr = float(re.findall(r"^\s*lr: .*; champion ([0-9.e+-]+)[;\n]?", prompt, re.M)[-1])
        width = int(re.findall(r"^\s*width: .*; champion ([0-9]+)\b", prompt, re.M)[-1])
        up = n % 2 == 0
        # The step varies from call to call: with every experimenter drafting ahead, several calls
        # answer from the same champion, and one fixed step would make them all repeat each other.
        step = 1.5 + 0.25 * (n // 2 % 4)
        new_width = min(512, round(width * step)) if up and width < 300 else max(8, round(width / step))
        return json.dumps({"proposals": [
            {"axis": "lr", "direction": "increase" if up else "decrease", "knobs": {"lr": round(lr * (step if up else 1 / step), 7)},
             "rationale": "lr is 10x below the usual range for this budget", "prediction": "loss falls by about 1"},
            {"axis": "width", "direction": "increase" if new_width > width else "decrease", "knobs": {"width": new_width},
             "bold": True, "rationale": "the width changes capacity per step", "prediction": "loss falls by 0.1"},
        ]})


def _run(server: OpenAICompatServer, settings: LabSettings) -> dict[str, Any]:
    model = ChatOpenAI(model="test-model", base_url=server.base_url, api_key="x", max_retries=0)
    ctx = LabContext(task=_task(), executor=FunctionExecutor(_loss, metric_name="loss", slots=2),
                     scientist=LLMScientist(model, max_repairs=1, call_timeout_s=TIMEOUT_S), poll_s=0.2,
                     settings=settings)
    graph = build_lab_graph().compile(checkpointer=InMemorySaver())
    return graph.invoke({"run_id": "flaky"}, context=ctx,
                        config={"configurable": {"thread_id": "flaky"}, "recursion_limit": 10_000})


def test_lab_survives_bad_rounds_and_spends_its_budget() -> None:
    script = FlakyServer()
    settings = LabSettings(n_teams=2, max_experiments=12, stop_after_no_keep=None, retry_wait_s=0.05,
                           max_failed_rounds=4)
    with OpenAICompatServer(script, prompt_tokens=TOKENS_IN, completion_tokens=TOKENS_OUT) as server:
        out = _run(server, settings)
        served = len(server.requests)
        served_in, served_out = server.served_prompt_tokens, server.served_completion_tokens

    # It finished its budget, not on the first bad answer.
    assert out["stop_reason"] == "experiment budget spent (12)"
    assert len(out["log"]) == 12

    # Every failure was logged and counted, by role and kind.
    failures = out["failed_turns"]
    kinds = {(f["role"], f["kind"]) for f in failures}
    assert {("organize", "invalid"), ("organize", "error"), ("propose", "error"), ("critique", "error")} <= kinds
    timeouts = [f for f in failures if f["role"] == "propose" and "no answer within" in f["reason"]]
    assert len(timeouts) == 1
    assert all(e["type"] != "turn_failed" or e["reason"] for e in out["events"])

    # Teams formed later, after the two failed organize rounds (retried without waiting for a regroup).
    organize_failures = sorted(f["rotation"] for f in failures if f["role"] == "organize")
    assert organize_failures == [1, 2]
    formed = [e for e in out["events"] if e["type"] == "team_formed"]
    assert len(formed) == 2 and {t["status"] for t in out["teams"]} == {"active"}
    explore = [s for s in out["submitted"] if s["kind"] == "explore"]
    assert explore, "the teams formed later ran experiments"
    assert out["champion"]["metric"] < 0.9  # and they improved on the default lr = 1e-3 (loss ~ 1)
    assert out["failed_rounds"] == 0  # the rounds after the recovery went well

    # Every call counted, failed ones too; tokens equal the server's usage, less the one reply the
    # client gave up on (its usage never reached the client).
    usage = out["usage"]
    assert usage["calls"] == served
    assert usage["failed_calls"] >= 5
    assert usage["input_tokens"] == served_in - script.timed_out_tokens
    assert usage["output_tokens"] == served_out - script.timed_out_tokens // TOKENS_IN * TOKENS_OUT


def test_lab_stops_after_max_failed_rounds_with_the_reason() -> None:
    settings = LabSettings(n_teams=2, max_experiments=30, stop_after_no_keep=None, retry_wait_s=0.01,
                           max_failed_rounds=3)
    with OpenAICompatServer(lambda body: ScriptedReply("model not loaded", status=500)) as server:
        out = _run(server, settings)
        served = len(server.requests)

    reason = out["stop_reason"]
    assert reason.startswith("3 rounds in a row failed") and "model not loaded" in reason and "max_failed_rounds" in reason
    assert [f["rotation"] for f in out["failed_turns"]] == [1, 2, 3]
    assert served == 3 and out["usage"]["calls"] == 3 and out["usage"]["failed_calls"] == 3
    # While it waited, the lab used its slots on the champion: baseline and repeats ran, nothing else.
    assert {e["kind"] for e in out["log"]} <= {"baseline", "noise"}
