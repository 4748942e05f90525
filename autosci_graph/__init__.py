"""autosci_graph: self-organizing teams of AI research agents (AutoScientists) on LangGraph.

The public face. Heavy modules (LangGraph, Chroma, torch) load lazily on first use, so
``import autosci_graph`` stays fast and the CLI starts quickly.
"""

from __future__ import annotations

from autosci_graph._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # tasks and records
    "ResearchTask": "autosci_graph.task",
    "load_task": "autosci_graph.task",
    "Change": "autosci_graph.state",
    "RunResult": "autosci_graph.state",
    "RunRequest": "autosci_graph.state",
    "AutosciError": "autosci_graph.errors",
    # graphs
    "build_lab_graph": "autosci_graph.graphs.lab",
    "build_single_agent_graph": "autosci_graph.graphs.single_agent",
    "LabContext": "autosci_graph.graphs.context",
    "LabSettings": "autosci_graph.graphs.context",
    "LabState": "autosci_graph.graphs.state",
    # scientists
    "Scientist": "autosci_graph.scientists.base",
    "SearchScientist": "autosci_graph.scientists.search",
    "LLMScientist": "autosci_graph.scientists.llm",
    "resolve_model": "autosci_graph.scientists.providers",
    # execution
    "Executor": "autosci_graph.tools.base",
    "LocalExecutor": "autosci_graph.tools.local",
    "FunctionExecutor": "autosci_graph.tools.inprocess",
    # memory
    "ExperimentMemory": "autosci_graph.memory.base",
    "InMemoryMemory": "autosci_graph.memory.base",
    "ChromaMemory": "autosci_graph.memory.chroma",
    "MemoryRecord": "autosci_graph.memory.record",
    "MiniLMEmbeddings": "autosci_graph.memory.embeddings",
    "search_memory_tool": "autosci_graph.memory.langchain",
    "make_experiment_tools": "autosci_graph.tools.langchain_tools",
    "run_final_eval": "autosci_graph.final_eval",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__, __dir__ = lazy_exports("autosci_graph", _EXPORTS, globals())
