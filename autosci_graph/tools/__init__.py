"""Experiment execution: executors, workspaces, metric parsing, LangChain tools.

Importing this package is cheap: nothing here imports torch or langchain. The LangChain tools
live in :mod:`autosci_graph.tools.langchain_tools` and load langchain-core when imported.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Executor": "autosci_graph.tools.base",
    "LocalExecutor": "autosci_graph.tools.local",
    "FunctionExecutor": "autosci_graph.tools.inprocess",
    "load_result": "autosci_graph.tools.local",
    "parse_metrics": "autosci_graph.tools.metrics",
    "ParsedMetrics": "autosci_graph.tools.metrics",
    "ensure_prepared": "autosci_graph.tools.prepare",
    "make_experiment_tools": "autosci_graph.tools.langchain_tools",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'autosci_graph.tools' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
