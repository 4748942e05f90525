"""Each example in examples/integrations/ runs, and does what it says.

Chat models come from scripted stand-ins or a local OpenAI-compatible server, never a live API.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_openai import ChatOpenAI

from tests.support.openai_server import OpenAICompatServer, ScriptedReply

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "integrations"


def _example(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))  # the examples import their sibling _toy.py, as scripts do
    return importlib.import_module(name)


def _baseline(log: list[dict[str, Any]]) -> float:
    return min(e["result"]["metric"] for e in log if e["kind"] == "baseline")


class TraceNames(BaseCallbackHandler):
    """Collects what a tracer such as LangSmith would show: each run's name, tags and metadata."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, list[str], dict[str, Any], UUID | None]] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                       tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.runs.append((kwargs.get("name") or "", list(tags or []), dict(metadata or {}), parent_run_id))


def test_lab_as_a_node_of_an_app() -> None:
    traces = TraceNames()
    out = _example("lab_as_node").main(callbacks=[traces])
    assert len(out["log"]) == 10 and out["stop_reason"] == "experiment budget spent (10)"
    assert out["run_id"] == "app-lower-the-toy-model"  # written by the app's intake node, used by the lab
    assert out["champion"]["metric"] < _baseline(out["log"]) - 0.3
    assert out["summary"].startswith("loss ") and f"{out['champion']['metric']:.3f}" in out["summary"]

    # A trace reads as the app's story: the named root run, the app's nodes, the lab's nodes inside.
    root = [r for r in traces.runs if r[3] is None]
    assert [r[0] for r in root] == ["my-research-app"]
    assert "autosci" in root[0][1] and root[0][2]["example"] == "lab_as_node"
    names = {r[0] for r in traces.runs}
    assert {"intake", "lab", "summarize", "organize", "team", "collect", "share"} <= names


def test_lab_as_a_tool_of_a_scripted_agent() -> None:
    out = _example("lab_as_tool").main()
    (result,) = out["tool_results"]
    assert result["experiments"] == 8 and result["champion"] < result["baseline"] - 0.3
    assert f"{result['champion']:.3f}" in out["answer"]


class ToolCallingServer(OpenAICompatServer):
    """The test server, answering ``CALL name {json args}`` contents as OpenAI ``tool_calls``."""

    def _completion(self, body: dict[str, Any], reply: ScriptedReply) -> dict[str, Any]:
        out = super()._completion(body, reply)
        if reply.content.startswith("CALL "):
            _, name, args = reply.content.split(" ", 2)
            out["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}]}
            out["choices"][0]["finish_reason"] = "tool_calls"
        return out


def test_lab_as_a_tool_of_chat_openai_through_a_local_server() -> None:
    def agent(body: dict[str, Any]) -> str:
        tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
        if not tool_messages:
            return "CALL run_research_lab " + json.dumps({"task": "toy", "max_experiments": 6})
        result = json.loads(tool_messages[-1]["content"])
        return f"Champion loss {result['champion']:.3f} after {result['experiments']} experiments."

    with ToolCallingServer(agent) as server:
        model = ChatOpenAI(model="test-model", base_url=server.base_url, api_key="x", max_retries=0)
        out = _example("lab_as_tool").main(model=model)
        requests = list(server.requests)
    # The tool's schema reached the model, the model's call ran a real lab, the answer used its result.
    tool = requests[0]["tools"][0]["function"]
    assert tool["name"] == "run_research_lab" and set(tool["parameters"]["properties"]) == {"task", "max_experiments"}
    (result,) = out["tool_results"]
    assert result["experiments"] == 6 and len(requests) == 2
    assert out["answer"] == f"Champion loss {result['champion']:.3f} after 6 experiments."


def test_memory_as_a_retriever_in_a_chain() -> None:
    out = _example("memory_rag").main()
    memory = out["memory"]
    assert memory.count({"task": "toy"}) == 14
    assert out["retrieved"] and all(d.metadata.get("outcome") != "keep" for d in out["retrieved"])
    lr_dead_ends = {r.id for r in memory.records({"failed": True, "axis": "lr"})}
    cited = {line.split("]", 1)[0].lstrip("[") for line in out["answer"].splitlines()[1:]}
    # The answer cites learning-rate dead ends from the memory, and only those.
    assert out["answer"].startswith(f"{len(cited)} learning-rate experiments") and cited and cited <= lr_dead_ends


def test_memory_chain_sends_the_retrieved_records_to_the_model() -> None:
    with OpenAICompatServer(["Raising lr to 0.032 diverged."]) as server:
        model = ChatOpenAI(model="test-model", base_url=server.base_url, api_key="x", max_retries=0)
        out = _example("memory_rag").main(model=model)
        (prompt,) = server.prompts()
    assert out["answer"] == "Raising lr to 0.032 diverged."
    assert "What failed with the learning rate (lr)?" in prompt
    assert all(d.metadata["id"] in prompt for d in out["retrieved"])


def test_progress_streams_updates_and_custom_events() -> None:
    shown: list[str] = []
    out = _example("stream_progress").main(show=shown.append, max_experiments=10)
    modes = {mode for mode, _ in out["chunks"]}
    assert modes == {"updates", "custom"}
    nodes = {node for mode, chunk in out["chunks"] if mode == "updates" for node in chunk}
    assert {"organize", "team-0", "collect", "share"} <= nodes
    events = [chunk for mode, chunk in out["chunks"] if mode == "custom"]
    assert sum(e["type"] == "experiment_finished" for e in events) == 10
    assert sum(e["type"] == "team_formed" for e in events) >= 2
    assert shown == out["lines"] and "stopping: experiment budget spent (10)" in shown
    assert any(line.startswith("champion now ") for line in shown)
