"""How the answer's schema reaches the model, against a local OpenAI-compatible server: in the
prompt only (any model), also as a bounded ``json_schema`` ``response_format`` with the task's
own names, which servers with grammars (llama.cpp, vLLM) enforce, or as the parameters of one
forced tool (``function_calling``); ``auto`` picks per provider."""

from __future__ import annotations

import json

import pytest
from langchain_openai import ChatOpenAI

from autosci_graph.scientists._answers import ProposeAnswer
from autosci_graph.scientists._schema import response_format
from autosci_graph.scientists.llm import LLMScientist
from tests.support.lab import make_proposal, make_team, make_view
from tests.support.openai_server import OpenAICompatServer, ScriptedReply

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


def _propose_with_tools(*answers: str | ScriptedReply, max_repairs: int = 2) -> tuple[list[dict], object]:
    """A ``function_calling`` proposal turn against the server's scripted answers: the requests, the reply."""
    with OpenAICompatServer(answers) as server:
        model = ChatOpenAI(model="test-model", base_url=server.base_url, api_key="x", max_retries=0)
        reply = LLMScientist(model, structured_output="function_calling", max_repairs=max_repairs).propose(
            make_view(), team=make_team(), author="exp-1", recalled=[], n=2)
        return server.requests, reply


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
    assert "tools" not in request and "tool_choice" not in request


def test_prompt_mode_sends_no_response_format() -> None:
    request, proposals = _propose("prompt")
    assert "response_format" not in request and "tools" not in request
    assert len(proposals) == 2


def test_function_calling_forces_one_tool_with_the_bounded_schema_and_reads_its_arguments() -> None:
    requests, reply = _propose_with_tools(ScriptedReply(tool_arguments=ANSWER, prompt_tokens=120, completion_tokens=40))
    [request] = requests
    assert "response_format" not in request
    [tool] = request["tools"]
    assert tool["type"] == "function" and tool["function"]["name"] == "ProposeAnswer"
    # A tool call is required, and there is one tool (llama.cpp's server ignores a tool named here).
    assert request["tool_choice"] == "required"
    # The tool's parameters are the very schema json_schema sends: bounded, with the task's names.
    expected = response_format(ProposeAnswer, make_view(), name="ProposeAnswer", max_items=2)["json_schema"]["schema"]
    assert tool["function"]["parameters"] == expected
    assert tool["function"]["parameters"]["properties"]["proposals"]["maxItems"] == 2
    assert [p.knobs for p in reply.proposals] == [{"lr": 0.008}, {"dropout": 0.05}]  # type: ignore[attr-defined]
    assert not reply.dropped  # type: ignore[attr-defined]
    usage = reply.usage  # type: ignore[attr-defined]
    assert (usage.input_tokens, usage.output_tokens, usage.calls, usage.failed_calls) == (120, 40, 1, 0)


def test_function_calling_reads_a_text_answer_when_the_provider_gives_no_tool_call() -> None:
    requests, reply = _propose_with_tools(f"Here is my answer:\n```json\n{ANSWER}\n```")
    assert len(requests) == 1 and requests[0]["tools"]
    assert [p.knobs for p in reply.proposals] == [{"lr": 0.008}, {"dropout": 0.05}]  # type: ignore[attr-defined]


def test_function_calling_repairs_broken_tool_arguments_like_any_answer_and_counts_them() -> None:
    broken = '{"proposals": [{"axis": "lr",'
    requests, reply = _propose_with_tools(ScriptedReply(tool_arguments=broken), ScriptedReply(tool_arguments=ANSWER))
    assert len(requests) == 2
    assert [p.knobs for p in reply.proposals] == [{"lr": 0.008}, {"dropout": 0.05}]  # type: ignore[attr-defined]
    usage = reply.usage  # type: ignore[attr-defined]
    assert (usage.input_tokens, usage.output_tokens, usage.calls, usage.failed_calls) == (22, 14, 2, 1)
    # The repair round shows the model its broken arguments and the problem, with the tool still forced.
    retry = requests[1]
    assert retry["messages"][-2] == {"role": "assistant", "content": broken}
    assert "not valid JSON" in retry["messages"][-1]["content"]
    assert retry["tool_choice"] == requests[0]["tool_choice"] and retry["tools"] == requests[0]["tools"]


def test_function_calling_drops_what_stays_invalid_and_counts_every_call() -> None:
    wrong = json.dumps({"proposals": [{"axis": "lr", "direction": "sideways", "knobs": {"lr": 0.008},
                                       "rationale": "a direction that does not exist", "prediction": "none"}]})
    requests, reply = _propose_with_tools(ScriptedReply(tool_arguments=wrong), "no JSON at all", max_repairs=1)
    assert len(requests) == 2 and reply.proposals == []  # type: ignore[attr-defined]
    [reason] = reply.dropped  # type: ignore[attr-defined]
    assert reason.startswith("propose: still invalid after 2 attempts") and "no JSON object" in reason
    assert (reply.usage.calls, reply.usage.failed_calls) == (2, 2)  # type: ignore[attr-defined]


def test_auto_picks_the_method_from_each_models_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """``openai-compatible`` (vLLM, llama.cpp) gets json_schema; ``openai`` a forced tool (its strict
    json_schema mode refuses optional fields); an OpenAI client object pointed at another server is
    openai-compatible. The critic's provider decides the critic's requests."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    review = json.dumps({"approve": True, "reason": "lr increases helped twice before; this tests it once more"})
    with OpenAICompatServer([ANSWER, ScriptedReply(tool_arguments=review), ANSWER]) as server:
        scientist = LLMScientist("openai-compatible:test-model", critic_model="openai:test-model",
                                 base_url=server.base_url, structured_output="auto")
        assert scientist.methods == {"propose": "json_schema", "critique": "function_calling", "organize": "json_schema"}
        view = make_view()
        assert len(scientist.propose(view, team=make_team(), author="exp-1", recalled=[], n=2).proposals) == 2
        critique = scientist.critique(view, proposal=make_proposal(author="exp-1"), reviewer="exp-2", recalled=[])
        assert critique.review is not None and critique.review.approve
        obj = LLMScientist(ChatOpenAI(model="test-model", base_url=server.base_url, api_key="x", max_retries=0),
                           structured_output="auto")
        assert len(obj.propose(view, team=make_team(), author="exp-1", recalled=[], n=2).proposals) == 2
        propose, critic, propose_obj = server.requests
    assert propose["response_format"]["type"] == "json_schema" and "tools" not in propose
    assert critic["tools"][0]["function"]["name"] == "ReviewAnswer" and critic["tool_choice"] == "required"
    assert "response_format" not in critic
    assert propose_obj["response_format"]["type"] == "json_schema" and "tools" not in propose_obj


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
