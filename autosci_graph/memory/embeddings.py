"""Embeddings for the memory: an offline default, and any LangChain ``Embeddings`` in its place.

The memory computes every vector itself and hands Chroma only vectors, so a store never depends on a
Chroma-side embedding function (nothing to register, nothing to download, and a Chroma server needs
none of our code). What a store must know is *which* model made its vectors: that is
:func:`embedding_identity`, recorded when the store is created and checked whenever it is opened.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from autosci_graph.memory import _minilm


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 running offline (ONNX export of hash-verified weights), as LangChain ``Embeddings``.

    Nothing loads until the first text is embedded; the first use on a machine exports the model to
    ``$AUTOSCI_CACHE_DIR/models`` (a few seconds, once). Vectors are 384-dimensional and unit length.
    Thread-safe: one instance may serve many threads.

    Example:
        >>> emb = MiniLMEmbeddings()
        >>> len(emb.embed_query("learning rate 3e-3 diverged"))  # doctest: +SKIP
        384

    Args:
        export_dir: where the ONNX export is cached (default: under the cache root).
        threads: onnxruntime intra-op threads (default: onnxruntime's choice, all cores).
        cache_size: how many recent texts keep their vector (0: none). Runs re-embed the same
            texts often: a resumed run re-adds its records, critics recall the same proposal.
    """

    identity: str = _minilm.IDENTITY
    dimension: int = _minilm.DIMENSION

    def __init__(self, *, export_dir: Path | None = None, threads: int | None = None, cache_size: int = 2048) -> None:
        self._export_dir = export_dir
        self._threads = threads
        self._cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._encoder: _minilm.Encoder | None = None
        self._load_lock = threading.Lock()
        # onnxruntime sessions are thread-safe for run(); the tokenizer is not documented as such.
        self._run_lock = threading.Lock()

    def _get_encoder(self) -> _minilm.Encoder:
        if self._encoder is None:
            with self._load_lock:
                if self._encoder is None:
                    self._encoder = _minilm.load_encoder(export_dir=self._export_dir, threads=self._threads)
        return self._encoder

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts into a ``(len(texts), 384)`` float32 array of unit vectors."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with self._run_lock:
            missing: dict[str, list[int]] = {}
            for i, text in enumerate(texts):
                cached = self._cache.get(text)
                if cached is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = cached
            if missing:
                fresh = self._get_encoder().encode(list(missing))
                for vector, positions in zip(fresh, missing.values(), strict=True):
                    out[positions] = vector
                    if self._cache_size:
                        self._cache[texts[positions[0]]] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """LangChain: embed documents."""
        return [[float(x) for x in row] for row in self.encode(texts)]

    def embed_query(self, text: str) -> list[float]:
        """LangChain: embed one query (same space as documents; this model uses no query prefix)."""
        return [float(x) for x in self.encode([text])[0]]


_default: MiniLMEmbeddings | None = None
_default_lock = threading.Lock()


def default_embeddings() -> MiniLMEmbeddings:
    """The process-wide default embeddings (one loaded model shared by every memory)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MiniLMEmbeddings()
        return _default


def embedding_identity(embeddings: Any) -> str:
    """A stable name for the model behind ``embeddings``, recorded in and checked against each store.

    Uses an ``identity`` attribute when present; otherwise the class plus its ``model`` /
    ``model_name`` field (e.g. ``langchain_openai.embeddings.base.OpenAIEmbeddings:text-embedding-3-small``).
    """
    explicit = getattr(embeddings, "identity", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    cls = type(embeddings)
    name = f"{cls.__module__}.{cls.__qualname__}"
    for attr in ("model", "model_name", "model_id", "deployment"):
        value = getattr(embeddings, attr, None)
        if isinstance(value, str) and value:
            return f"{name}:{value}"
    return name


def embed_documents(embeddings: Any, texts: list[str]) -> np.ndarray:
    """Embed with any LangChain ``Embeddings`` into a float32 matrix (fast path for the default)."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    if isinstance(embeddings, MiniLMEmbeddings):
        return embeddings.encode(texts)
    return np.asarray(embeddings.embed_documents(list(texts)), dtype=np.float32)


def embed_query(embeddings: Any, text: str) -> np.ndarray:
    """Embed one query with any LangChain ``Embeddings`` into a float32 vector."""
    if isinstance(embeddings, MiniLMEmbeddings):
        first: np.ndarray = embeddings.encode([text])[0]
        return first
    vector: np.ndarray = np.asarray(embeddings.embed_query(text), dtype=np.float32)
    return vector
