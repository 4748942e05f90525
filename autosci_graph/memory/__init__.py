"""Experiment memory: every run becomes a record that later proposals, critics and users can recall.

``ChromaMemory`` (persistent, or a Chroma server) is the backend runs use; ``InMemoryMemory`` is the
reference. Embeddings are offline by default (all-MiniLM-L6-v2); any LangChain ``Embeddings`` can
replace them with ``embeddings=``. Names load lazily: importing this package loads neither Chroma
nor the model.
"""

from __future__ import annotations

from autosci_graph._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "ExperimentMemory": "autosci_graph.memory.base",
    "InMemoryMemory": "autosci_graph.memory.base",
    "MemoryStats": "autosci_graph.memory.base",
    "MemoryRecord": "autosci_graph.memory.record",
    "MemoryFilter": "autosci_graph.memory.record",
    "RecallHit": "autosci_graph.memory.record",
    "ChromaMemory": "autosci_graph.memory.chroma",
    "MiniLMEmbeddings": "autosci_graph.memory.embeddings",
    "default_embeddings": "autosci_graph.memory.embeddings",
    "embedding_identity": "autosci_graph.memory.embeddings",
    "ExperimentMemoryRetriever": "autosci_graph.memory.langchain",
    "search_memory_tool": "autosci_graph.memory.langchain",
    "default_memory_dir": "autosci_graph.memory.paths",
    "MemoryCorruptError": "autosci_graph.memory.errors",
    "EmbeddingMismatchError": "autosci_graph.memory.errors",
    "MemoryUnreachableError": "autosci_graph.memory.errors",
    "EmbeddingModelError": "autosci_graph.memory.errors",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("autosci_graph.memory", _EXPORTS, globals())
