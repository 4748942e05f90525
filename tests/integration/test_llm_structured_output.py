"""How the answer's schema reaches the model, against a local OpenAI-compatible server: in the
prompt only (any model), or also as a bounded ``json_schema`` ``response_format`` with the task's
own names, which servers with grammars (llama.cpp, vLLM) enforce."""

from __future__ import annotations

import json

import pytest
from langchain_openai import ChatOpenAI

from autosci_graph.scientists.llm import LLMScientist
from tests.support.lab import make_team, make_view
from tests.support.openai_server import OpenAICompatServer

pytestmark = pytest.mark.integration

ANSWER = json.dumps({"proposals": [
    {"axis": "lr", "direction": "increase", "knobs": {"lr": 0.008}, "bold": True,
     "rationale": "lr increases helped twice; double it", "prediction": "val_bpb -0.02"},
    {"axis": "dropout", "direction": "decrease", "knobs": {"dropout": 0.05},
     "rationale": "dropout 0.4 hurt; less may help", "prediction": "val_bpb -0.01"},
]})


def _propose(structured: str) -> tuple[dict, list]:
    with OpenAICompatServer([ANSWER]) as server:
        model = ChatOpenAI(model="test-model", base_url=server.base_url, api_key="x", max_retries=0)
        reply = LLMScientist(model, structured_output=structured).propose(  # type: ignore[arg-type]
            make_view(), team=make_team(), author="exp-1", recalled=[], n=2)
        return server.requests[0], reply.proposals


def test_json_schema_sends_a_bounded_schema_with_the_tasks_names() -> None:
    request, proposals = _propose("json_schema")
    assert [p.knobs for p in proposals] == [{"lr": 0.008}, {"dropout": 0.05}]
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    assert schema["properties"]["proposals"]["maxItems"] == 2
    variants = schema["$defs"]["ProposalAnswer"]["anyOf"]
    # One variant per knob: its axis names the knob, knobs sets exactly it, typed.
    by_axis = {v["properties"]["axis"]["enum"][0]: v for v in variants}
    assert set(by_axis) == set(make_view().task.knobs)
    assert by_axis["lr"]["properties"]["knobs"] == {"type": "object", "properties": {"lr": {"type": "number"}},
                                                    "required": ["lr"], "additionalProperties": False}
    assert by_axis["activation"]["properties"]["direction"]["enum"] == ["set"]
    assert by_axis["n_layer"]["properties"]["knobs"]["properties"]["n_layer"] == {"type": "integer"}
    # Every string is bounded; no code field on a task without editable files.
    strings = [p for v in variants for k, p in v["properties"].items() if p.get("type") == "string" and "enum" not in p]
    assert strings and all("maxLength" in p for p in strings)
    assert all("diff" not in v["properties"] for v in variants)


def test_prompt_mode_sends_no_response_format() -> None:
    request, proposals = _propose("prompt")
    assert "response_format" not in request
    assert len(proposals) == 2


def test_step_menu_offers_four_steps_per_numeric_knob_never_the_champions_value() -> None:
    from autosci_graph.lab.critique import CritiqueRules, unit_step
    from autosci_graph.scientists._answers import ProposeAnswer
    from autosci_graph.scientists._schema import response_format

    view = make_view()
    variants = response_format(ProposeAnswer, view, name="p", max_items=2, step_menu=True)["json_schema"]["schema"]["$defs"]["ProposalAnswer"]["anyOf"]
    lr = [v["properties"] for v in variants if v["properties"]["axis"]["enum"] == ["lr"]]
    values = {p["knobs"]["properties"]["lr"]["enum"][0]: (p["direction"]["enum"][0], p["bold"]["enum"][0]) for p in lr}
    champion = view.champion.config["lr"]  # 0.004, on a log scale
    # lr spans [1e-4, 3e-2] on a log scale: even x2 moves 12% of it, so every step is bold (>= 10%).
    assert values == {0.008: ("increase", True), 0.016: ("increase", True), 0.002: ("decrease", True), 0.001: ("decrease", True)}
    # The bold tag the grammar fixes is the one the critique rules would give.
    for v, (_, bold) in values.items():
        step = unit_step(view.task, view.champion.config, {"lr": v}, "lr")
        assert (step is not None and step >= CritiqueRules().bold_min_step) == bold
    assert champion not in values
    # A categorical knob keeps its choices, with direction set.
    act = [v["properties"] for v in variants if v["properties"]["axis"]["enum"] == ["activation"]]
    assert len(act) == 1 and act[0]["direction"]["enum"] == ["set"]
