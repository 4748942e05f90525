"""The memory as a LangChain retriever and tool."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool

from autosci_graph.memory.base import InMemoryMemory
from autosci_graph.memory.langchain import TOOL_NAME, search_memory_tool

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def memory() -> InMemoryMemory:
    mem = InMemoryMemory()
    mem.import_jsonl(FIXTURES / "memory_records.jsonl")
    return mem


def test_as_retriever_returns_filtered_documents(memory: InMemoryMemory) -> None:
    retriever = memory.as_retriever(task="gpt-bpb", failed=True, k=3)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("GPU ran out of memory")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    assert docs[0].metadata["experiment_id"] in {"bs-oom", "seq-len-oom"}
    assert all(d.metadata["task"] == "gpt-bpb" and d.metadata["failed"] is True for d in docs)
    assert docs[0].metadata["score"] >= docs[-1].metadata["score"]
    assert "record" not in docs[0].metadata  # the raw JSON stays out of prompts
    assert docs[0].page_content.startswith("Task gpt-bpb")
    assert docs[0].id == docs[0].metadata["id"]


def test_search_tool_schema_and_call(memory: InMemoryMemory) -> None:
    tool = search_memory_tool(memory)
    assert isinstance(tool, BaseTool) and tool.name == TOOL_NAME == "search_experiment_memory"
    schema = tool.args_schema.model_json_schema()  # type: ignore[union-attr]
    assert set(schema["properties"]) == {"query", "task", "status", "k"} and schema["required"] == ["query"]
    out = tool.invoke({"query": "loss went to NaN", "status": "diverged", "k": 2})
    lines = out.splitlines()
    assert len(lines) == 2 and all("diverged" in line for line in lines)
    assert lines[0].startswith("1. [")
    assert "No matching experiments" in tool.invoke({"query": "x", "task": "unknown-task"})


def test_search_tool_rejects_bad_k(memory: InMemoryMemory) -> None:
    with pytest.raises(ValueError):
        search_memory_tool(memory).invoke({"query": "x", "k": 0})


def test_retriever_on_an_empty_memory() -> None:
    assert InMemoryMemory().as_retriever().invoke("anything") == []
