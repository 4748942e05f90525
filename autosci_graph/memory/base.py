"""The experiment-memory interface: every run becomes a record agents (and users) can recall.

The lab graph relies on these names:

* ``MemoryRecord.from_result(result, *, task, run_id, team, axis, direction, hypothesis,
  champion_metric, minimize, outcome)`` -> MemoryRecord
* ``ExperimentMemory.add(records)`` (idempotent by ``record.id``: task/run/experiment)
* ``ExperimentMemory.recall(text, k=5, where=None)`` -> list[RecallHit] (``.record``, ``.score``)
* ``ExperimentMemory.similar_failures(text, *, task, k=5)`` -> list[RecallHit]
* ``ExperimentMemory.count(where=None)`` -> int

A backend implements four hooks (``_upsert``, ``_query``, ``get``, ``_scan``); embedding, scoping,
de-duplication and every convenience are built here on top of them, so all backends recall alike.
:class:`InMemoryMemory` is the reference backend; ``tests/unit/test_memory_contract.py`` is the
contract every backend must pass.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from autosci_graph.memory.record import (
    FailureClass,
    MemoryFilter,
    MemoryRecord,
    RecallHit,
    describe_change,
    parse_jsonl,
    record_id,
)

__all__ = [
    "ExperimentMemory",
    "FailureClass",
    "InMemoryMemory",
    "MemoryFilter",
    "MemoryRecord",
    "MemoryStats",
    "RecallHit",
    "Where",
    "describe_change",
    "record_id",
]

#: What every ``where=`` argument accepts: a :class:`MemoryFilter`, a dict of its fields, or None.
Where = MemoryFilter | Mapping[str, Any] | None


class MemoryStats(BaseModel):
    """What a memory holds, counted (``autosci memory stats``)."""

    model_config = ConfigDict(frozen=True)

    total: int
    by_task: dict[str, int]
    by_status: dict[str, int]
    by_outcome: dict[str, int]
    by_failure_class: dict[str, int]
    embedding: str
    location: str


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    # Cosine similarity on every backend: unit vectors make it a dot product in memory and keep
    # Chroma's cosine distance exact even for user embeddings that are not normalized.
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit: np.ndarray = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


class ExperimentMemory(ABC):
    """A searchable record of every experiment, shared by the agents of a run and by later runs.

    Contract (every backend, checked by the contract tests):

    * ``add`` is an upsert keyed by ``record.id``: re-adding an experiment replaces it, never duplicates.
    * ``recall`` ranks by cosine similarity of :meth:`MemoryRecord.document` embeddings, best first,
      and applies ``where`` before ranking (a filter never shrinks *k* for matches that exist).
    * Thread-safe: concurrent ``add`` calls from several threads lose nothing.
    * ``task=`` scopes the memory: calls without a task condition see only that task's records.

    Args:
        task: default task scope (None: all tasks).
        embeddings: any LangChain ``Embeddings``; default the offline all-MiniLM-L6-v2.
    """

    def __init__(self, *, task: str | None = None, embeddings: Any = None) -> None:
        self.task = task
        self._embeddings = embeddings

    # -- hooks a backend implements ------------------------------------------------------------

    @abstractmethod
    def _upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        """Store records (unique ids) with their unit-length document vectors, replacing same ids."""

    @abstractmethod
    def _query(self, vector: np.ndarray, k: int, where: MemoryFilter) -> list[RecallHit]:
        """The ``k`` records matching ``where`` nearest to a unit ``vector``, best first."""

    @abstractmethod
    def get(self, ids: Iterable[str]) -> list[MemoryRecord]:
        """Fetch records by ``record.id``, in the order asked; unknown ids are skipped."""

    @abstractmethod
    def _scan(self, where: MemoryFilter) -> list[MemoryRecord]:
        """Every record matching ``where``, in any order."""

    # -- embedding -----------------------------------------------------------------------------

    @property
    def embeddings(self) -> Any:
        """The LangChain ``Embeddings`` in use (the shared offline default unless one was given)."""
        if self._embeddings is None:
            from autosci_graph.memory.embeddings import default_embeddings

            self._embeddings = default_embeddings()
        return self._embeddings

    @property
    def embedding_id(self) -> str:
        """Identity of the embedding model, recorded in persistent stores."""
        from autosci_graph.memory.embeddings import embedding_identity

        return embedding_identity(self.embeddings)

    def _embed_documents(self, texts: list[str]) -> np.ndarray:
        from autosci_graph.memory.embeddings import embed_documents

        return _unit_rows(embed_documents(self.embeddings, texts))

    def _embed_query(self, text: str) -> np.ndarray:
        from autosci_graph.memory.embeddings import embed_query

        return _unit_rows(embed_query(self.embeddings, text))

    def _scope(self, where: Where) -> MemoryFilter:
        return MemoryFilter.coerce(where).with_default_task(self.task)

    # -- the interface -------------------------------------------------------------------------

    def add(self, records: MemoryRecord | Iterable[MemoryRecord]) -> int:
        """Store records (upsert by ``record.id``); return how many distinct records were written."""
        batch = [records] if isinstance(records, MemoryRecord) else list(records)
        unique = list({r.id: r for r in batch}.values())  # last write of an id wins, as in a resumed run
        if unique:
            self._upsert(unique, self._embed_documents([r.document() for r in unique]))
        return len(unique)

    def recall(self, text: str, k: int = 5, where: Where = None) -> list[RecallHit]:
        """The ``k`` records most similar to ``text`` among those matching ``where``, best first."""
        if k <= 0:
            return []
        return self._query(self._embed_query(text), k, self._scope(where))

    def records(self, where: Where = None, *, limit: int | None = None) -> list[MemoryRecord]:
        """Records matching ``where``, oldest first (at most ``limit``, the newest ones)."""
        found = sorted(self._scan(self._scope(where)), key=lambda r: (r.timestamp, r.id))
        return found[-limit:] if limit else found

    def count(self, where: Where = None) -> int:
        """How many records match ``where``."""
        return len(self._scan(self._scope(where)))

    # -- conveniences --------------------------------------------------------------------------

    def similar_failures(self, text: str, *, task: str | None = None, k: int = 5) -> list[RecallHit]:
        """Past dead ends (failed runs and discards) most similar to a proposal's text.

        What a proposer reads before proposing and a critic uses to reject repeats.
        """
        return self.recall(text, k, MemoryFilter(task=task or self.task, failed=True))

    def successes(self, task: str | None = None) -> list[MemoryRecord]:
        """Kept experiments of a task, the largest improvement first."""
        kept = self.records(MemoryFilter(task=task or self.task, outcome="keep"))

        def gain(r: MemoryRecord) -> float:
            if r.delta is None:
                return float("-inf")
            return -r.delta if r.minimize else r.delta

        return sorted(kept, key=gain, reverse=True)

    def dead_ends(self, task: str | None = None, axis: str | None = None) -> list[MemoryRecord]:
        """Failed or discarded experiments of a task (optionally on one axis), newest first."""
        return list(reversed(self.records(MemoryFilter(task=task or self.task, axis=axis, failed=True))))

    def export_jsonl(self, path: str | Path, where: Where = None) -> int:
        """Write matching records to ``path`` as JSON lines (oldest first); return the count."""
        found = self.records(where)
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text("".join(r.to_json() + "\n" for r in found), encoding="utf-8")
        tmp.replace(target)  # never leave a half-written export behind
        return len(found)

    def import_jsonl(self, path: str | Path) -> int:
        """Add the records of a JSON-lines export (idempotent); return how many were read.

        Raises ``ValueError`` naming the line when a line is not a record; nothing is written then.
        """
        source = Path(path)
        records = parse_jsonl(source.read_text(encoding="utf-8").splitlines(), str(source))
        self.add(records)
        return len(records)

    def stats(self, where: Where = None) -> MemoryStats:
        """Counts by task, status, outcome and failure class."""
        found = self._scan(self._scope(where))

        def tally(values: Iterable[str | None]) -> dict[str, int]:
            return dict(Counter(v or "-" for v in values).most_common())

        return MemoryStats(
            total=len(found),
            by_task=tally(r.task for r in found),
            by_status=tally(r.status for r in found),
            by_outcome=tally(r.outcome for r in found),
            by_failure_class=tally(r.failure_class for r in found),
            embedding=self.embedding_id,
            location=self.location,
        )

    @property
    def location(self) -> str:
        """Where the records live, in words."""
        return "in memory"

    def as_retriever(self, *, k: int = 5, **filters: Any) -> Any:
        """This memory as a LangChain ``BaseRetriever`` (filters: any :class:`MemoryFilter` field)."""
        from autosci_graph.memory.langchain import ExperimentMemoryRetriever

        return ExperimentMemoryRetriever(memory=self, k=k, where=MemoryFilter(**filters))

    def close(self) -> None:
        """Release clients and files. The memory must not be used afterwards."""

    def __enter__(self) -> ExperimentMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InMemoryMemory(ExperimentMemory):
    """The reference backend: records and vectors in this process, exact cosine ranking.

    Same embeddings and recall semantics as the Chroma backend, nothing persisted. Useful in tests
    and for one-off runs; ``export_jsonl`` keeps its content.

    Example:
        >>> mem = InMemoryMemory()
        >>> mem.add(MemoryRecord(task="t", run_id="r", experiment_id="e1", status="oom"))  # doctest: +SKIP
        1
    """

    def __init__(self, *, task: str | None = None, embeddings: Any = None) -> None:
        super().__init__(task=task, embeddings=embeddings)
        self._lock = threading.RLock()
        self._records: dict[str, MemoryRecord] = {}
        self._vectors: dict[str, np.ndarray] = {}

    def _upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        with self._lock:
            for record, vector in zip(records, vectors, strict=True):
                self._records[record.id] = record
                self._vectors[record.id] = vector

    def _query(self, vector: np.ndarray, k: int, where: MemoryFilter) -> list[RecallHit]:
        with self._lock:
            ids = [i for i, r in self._records.items() if where.matches(r)]
            if not ids:
                return []
            scores = np.stack([self._vectors[i] for i in ids]) @ vector
            records = [self._records[i] for i in ids]
        order = np.argsort(-scores, kind="stable")[:k]
        return [RecallHit(record=records[j], score=float(scores[j])) for j in order]

    def get(self, ids: Iterable[str]) -> list[MemoryRecord]:
        with self._lock:
            return [self._records[i] for i in ids if i in self._records]

    def _scan(self, where: MemoryFilter) -> list[MemoryRecord]:
        with self._lock:
            return [r for r in self._records.values() if where.matches(r)]
