"""LangChain faces of the memory: a retriever and a "search experiment memory" tool.

Both work on any :class:`~autosci_graph.memory.base.ExperimentMemory`, so a LangChain agent or RAG
chain can consult what a lab has already tried.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from autosci_graph.memory.base import ExperimentMemory, MemoryFilter, RecallHit
from autosci_graph.memory.record import metadata_of

TOOL_NAME = "search_experiment_memory"


def hit_to_document(hit: RecallHit) -> Document:
    """A recall hit as a LangChain ``Document``: the record's sentence, its fields as metadata."""
    meta: dict[str, Any] = {k: v for k, v in metadata_of(hit.record).items() if k != "record"}
    meta.update(id=hit.record.id, score=hit.score)
    return Document(page_content=hit.record.document(), metadata=meta, id=hit.record.id)


class ExperimentMemoryRetriever(BaseRetriever):
    """Retrieve the past experiments most similar to a query.

    Example:
        >>> retriever = memory.as_retriever(task="gpt-bpb", failed=True, k=3)  # doctest: +SKIP
        >>> retriever.invoke("learning rate warmup too short")  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: ExperimentMemory
    #: How many records to return.
    k: int = 5
    #: Conditions every returned record meets.
    where: MemoryFilter = Field(default_factory=MemoryFilter)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [hit_to_document(h) for h in self.memory.recall(query, self.k, self.where)]


class SearchMemoryArgs(BaseModel):
    """Arguments of the ``search_experiment_memory`` tool."""

    query: str = Field(description="what you plan to try or want to know about, in words")
    task: str | None = Field(default=None, description="only experiments of this task")
    status: str | None = Field(
        default=None, description="only runs that ended so: ok, timeout, crash, oom, diverged, no_metric, bad_change"
    )
    k: int = Field(default=5, ge=1, le=50, description="how many experiments to return")


def format_hits(hits: list[RecallHit]) -> str:
    """Recall hits as short numbered lines an LLM can read."""
    if not hits:
        return "No matching experiments in memory."
    return "\n".join(f"{n}. [{h.record.id}, similarity {h.score:.2f}] {h.record.document()}" for n, h in enumerate(hits, 1))


def search_memory_tool(memory: ExperimentMemory) -> BaseTool:
    """The LangChain tool ``search_experiment_memory`` over ``memory``.

    Example:
        >>> tool = search_memory_tool(memory)  # doctest: +SKIP
        >>> tool.invoke({"query": "batch size 512 out of memory", "status": "oom"})  # doctest: +SKIP
    """

    def search(query: str, task: str | None = None, status: str | None = None, k: int = 5) -> str:
        return format_hits(memory.recall(query, k, MemoryFilter(task=task, status=status)))

    return StructuredTool.from_function(
        func=search,
        name=TOOL_NAME,
        description=(
            "Search the memory of past experiments (what was tried, whether it helped, how it failed) "
            "for those most similar to a query. Use it before proposing an experiment, to avoid known dead ends."
        ),
        args_schema=SearchMemoryArgs,
    )
