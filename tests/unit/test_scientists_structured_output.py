"""The per-provider table behind ``structured_output="auto"``, and bad choices refused in one line
(Python, the CLI and the server's input). The requests themselves are tested against the local
OpenAI-compatible server in ``tests/integration/test_llm_structured_output.py``."""

from __future__ import annotations

import json
from typing import get_args

import pytest
from langchain_openai import ChatOpenAI

from autosci_graph.cli import main
from autosci_graph.errors import SettingsError
from autosci_graph.scientists import providers
from autosci_graph.scientists.llm import LLMScientist
from autosci_graph.scientists.structured_output import CHOICES, METHODS, Method, pick, provider_of
from tests.support.lab import make_team, make_view
from tests.support.scripted import ScriptedChatModel

ANSWER = json.dumps({"proposals": [{"axis": "lr", "direction": "increase", "knobs": {"lr": 0.008}, "bold": True,
                                    "rationale": "lr increases helped twice", "prediction": "val_bpb -0.02"}]})


def test_every_provider_in_the_table_is_one_the_project_knows() -> None:
    known = set(providers._PROVIDERS) | set(providers._INIT_CHAT_MODEL_PACKAGES)
    assert set(METHODS) <= known, set(METHODS) - known
    assert set(METHODS.values()) <= set(get_args(Method))
    # Aliases resolve before the lookup: vLLM and llama.cpp servers get their grammars.
    assert pick(providers.split_model_string("vllm:qwen")[0]) == pick(providers.split_model_string("llamacpp:q")[0]) == "json_schema"


def test_an_unlisted_provider_gets_the_prompt_which_works_with_any_model() -> None:
    assert pick("huggingface") == pick("") == "prompt"
    scientist = LLMScientist(ScriptedChatModel(responses=[ANSWER]), structured_output="auto")
    assert set(scientist.methods.values()) == {"prompt"}
    assert len(scientist.propose(make_view(), team=make_team(), author="exp-1", recalled=[], n=1).proposals) == 1


def test_an_openai_client_is_openai_compatible_when_pointed_at_another_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    assert provider_of(ChatOpenAI(model="m", api_key="x")) == "openai"  # type: ignore[arg-type]
    assert provider_of(ChatOpenAI(model="m", api_key="x", base_url="https://api.openai.com/v1")) == "openai"  # type: ignore[arg-type]
    assert provider_of(ChatOpenAI(model="m", api_key="x", base_url="http://127.0.0.1:8080/v1")) == "openai-compatible"  # type: ignore[arg-type]
    assert pick(provider_of(ScriptedChatModel(responses=[]))) == "prompt"


@pytest.mark.parametrize("bad", ["grammar", "JSON_SCHEMA", ""])
def test_an_unknown_method_is_refused_in_one_line_naming_the_choices(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        LLMScientist(ScriptedChatModel(responses=[]), structured_output=bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and repr(bad) in message
    assert all(repr(choice) in message for choice in CHOICES)


def test_function_calling_on_a_model_without_tools_names_the_fix() -> None:
    with pytest.raises(SettingsError, match="needs tool calling.*use 'prompt'"):
        LLMScientist(ScriptedChatModel(responses=[]), structured_output="function_calling")


def test_the_cli_refuses_an_unknown_method_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "tests/integration/tasks/quadratic", "--structured-output", "tools"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "invalid choice: 'tools'" in err and all(f"'{choice}'" in err for choice in CHOICES)


def test_the_server_input_refuses_an_unknown_method_before_any_run() -> None:
    from autosci_graph.server import prepare

    task = "tests/integration/tasks/quadratic"
    with pytest.raises(SettingsError, match="structured_output must be one of 'prompt', 'json_schema', 'function_calling', 'auto'"):
        prepare({"task_dir": task, "structured_output": "tools"})  # type: ignore[typeddict-item]
    assert prepare({"task_dir": task, "structured_output": "auto"})["run_id"]
