"""Experiment execution: executors, workspaces, metric parsing, LangChain tools.

Importing this package is cheap: nothing here imports torch, langchain or ray. The LangChain tools
live in :mod:`autosci_graph.tools.langchain_tools` and load langchain-core when imported.
"""

from __future__ import annotations

from autosci_graph._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Executor": "autosci_graph.tools.base",
    "LocalExecutor": "autosci_graph.tools.local",
    "RayExecutor": "autosci_graph.tools.ray",
    "make_executor": "autosci_graph.tools.executors",
    "FunctionExecutor": "autosci_graph.tools.inprocess",
    "load_result": "autosci_graph.tools.local",
    "parse_metrics": "autosci_graph.tools.metrics",
    "ParsedMetrics": "autosci_graph.tools.metrics",
    "ensure_prepared": "autosci_graph.tools.prepare",
    "make_experiment_tools": "autosci_graph.tools.langchain_tools",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("autosci_graph.tools", _EXPORTS, globals())
