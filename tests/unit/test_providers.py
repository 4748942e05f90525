"""provider:model strings -> LangChain chat models; missing packages give the install command."""

from __future__ import annotations

import logging
import sys

import pytest
from langchain_openai import ChatOpenAI

from autosci_graph.errors import AutosciError, ErrorCode, SettingsError
from autosci_graph.scientists.llm import LLMScientist
from autosci_graph.scientists.providers import DUMMY_API_KEY, redact_url, resolve_model, split_model_string


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "MY_LOCAL_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("Ollama:llama3.1:8b", ("ollama", "llama3.1:8b")),
        ("vllm:Qwen/Qwen2.5-7B", ("openai-compatible", "Qwen/Qwen2.5-7B")),
        ("lmstudio:local", ("openai-compatible", "local")),
    ],
)
def test_split_model_string(spec: str, expected: tuple[str, str]) -> None:
    assert split_model_string(spec) == expected


@pytest.mark.parametrize("spec", ["gpt-4o", "openai:", ":model", ""])
def test_malformed_spec_says_the_expected_form(spec: str) -> None:
    with pytest.raises(SettingsError, match="provider:model"):
        resolve_model(spec)


def test_openai_compatible_uses_base_url_and_a_dummy_key() -> None:
    model = resolve_model("openai-compatible:qwen", base_url="http://127.0.0.1:9/v1", max_retries=0, temperature=0.2)
    assert isinstance(model, ChatOpenAI)
    assert model.model_name == "qwen" and model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.openai_api_key.get_secret_value() == DUMMY_API_KEY
    assert model.max_retries == 0 and model.temperature == 0.2


def test_openai_compatible_never_sends_the_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-secret")
    model = resolve_model("vllm:qwen", base_url="http://127.0.0.1:9/v1")
    assert model.openai_api_key.get_secret_value() == DUMMY_API_KEY


def test_openai_compatible_reads_a_named_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LOCAL_KEY", "local-secret")
    model = resolve_model("openai-compatible:qwen", base_url="http://127.0.0.1:9/v1", api_key_env="MY_LOCAL_KEY")
    assert model.openai_api_key.get_secret_value() == "local-secret"


def test_openai_compatible_needs_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="base URL"):
        resolve_model("openai-compatible:qwen")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert resolve_model("openai-compatible:qwen").openai_api_base == "http://127.0.0.1:9/v1"


def test_openai_needs_its_key_and_never_logs_it(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(SettingsError, match="OPENAI_API_KEY"):
        resolve_model("openai:gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-123")
    with caplog.at_level(logging.DEBUG, logger="autosci_graph"):
        model = resolve_model("openai:gpt-4o-mini", base_url="https://user:pw@proxy.example/v1")
    assert model.openai_api_key.get_secret_value() == "sk-test-secret-123"
    assert "sk-test-secret-123" not in repr(model) and "sk-test-secret-123" not in caplog.text
    assert "pw" not in caplog.text and "***@proxy.example" in caplog.text


@pytest.mark.parametrize(
    ("spec", "module", "command"),
    [
        ("anthropic:claude-sonnet-4-5", "langchain_anthropic", "pip install langchain-anthropic"),
        ("ollama:llama3.1", "langchain_ollama", "pip install langchain-ollama"),
        ("openai:gpt-4o-mini", "langchain_openai", "pip install langchain-openai"),
    ],
)
def test_missing_provider_package_gives_the_install_command(
    monkeypatch: pytest.MonkeyPatch, spec: str, module: str, command: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail like a missing package
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    with pytest.raises(AutosciError) as info:
        resolve_model(spec)
    assert info.value.code is ErrorCode.PROVIDER_MISSING
    assert command in str(info.value)


def test_other_langchain_providers_need_langchain_and_their_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain", None)
    monkeypatch.setitem(sys.modules, "langchain.chat_models", None)
    with pytest.raises(AutosciError) as info:
        resolve_model("groq:llama-3.1-8b")
    assert info.value.code is ErrorCode.PROVIDER_MISSING
    assert "pip install langchain langchain-groq" in str(info.value)


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(SettingsError, match="known providers: .*anthropic.*ollama.*openai"):
        resolve_model("nosuch:model")


def test_redact_url() -> None:
    assert redact_url("http://a:b@host:8000/v1") == "http://***@host:8000/v1"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_llm_scientist_accepts_provider_strings_per_role() -> None:
    sci = LLMScientist("openai-compatible:big", critic_model="openai-compatible:small", base_url="http://127.0.0.1:9/v1")
    assert sci.name == "llm:big"
    assert (sci.model.model_name, sci.critic_model.model_name, sci.organizer_model.model_name) == ("big", "small", "big")


def test_llm_scientist_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="BaseChatModel"):
        LLMScientist(object())  # type: ignore[arg-type]
