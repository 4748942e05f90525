"""Errors of the experiment memory, all :class:`~autosci_graph.errors.MemoryError_` with a fix in the message."""

from __future__ import annotations

from autosci_graph.errors import ErrorCode, MemoryError_


class MemoryCorruptError(MemoryError_):
    """The memory directory cannot be read as a Chroma store. It is never deleted or rewritten."""

    code = ErrorCode.MEMORY_CORRUPT


class EmbeddingMismatchError(MemoryError_):
    """The store was built with another embedding model; mixing vectors would make recall meaningless."""

    code = ErrorCode.MEMORY_EMBEDDING_MISMATCH


class MemoryUnreachableError(MemoryError_):
    """A Chroma server given by host and port does not answer."""

    code = ErrorCode.MEMORY_UNREACHABLE


class EmbeddingModelError(MemoryError_):
    """The offline embedding model is missing or its files fail the hash check."""

    code = ErrorCode.MEMORY_CORRUPT


class MemoryBusyError(MemoryError_):
    """Another process is writing the same local memory folder."""

    code = ErrorCode.MEMORY_UNREACHABLE
