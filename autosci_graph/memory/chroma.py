"""The experiment memory on Chroma: a folder on disk by default, a Chroma server when shared.

Design choice: the memory embeds every text itself and gives Chroma only vectors (``embeddings=`` /
``query_embeddings=``); collections are created with ``embedding_function=None``. Chroma therefore
never needs an embedding function: nothing to register or import before reopening a collection,
nothing downloaded (Chroma's default function fetches a model and fails offline), and a Chroma
server needs none of our code. The model that made the vectors is recorded in the collection
metadata and checked on every open, which is what a registered function would have given us.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autosci_graph.errors import SettingsError
from autosci_graph.memory import _lock
from autosci_graph.memory.base import ExperimentMemory
from autosci_graph.memory.errors import EmbeddingMismatchError, MemoryBusyError, MemoryCorruptError, MemoryUnreachableError
from autosci_graph.memory.paths import default_memory_dir
from autosci_graph.memory.record import MemoryFilter, MemoryRecord, RecallHit, metadata_of, record_from_metadata

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "autosci_experiments"
SCHEMA_VERSION = 1
_EMBEDDING_KEY = "autosci_embedding"
_SCHEMA_KEY = "autosci_schema"
#: Chroma refuses more than ``get_max_batch_size()`` records per call (5461 locally); stay below it.
_FALLBACK_BATCH = 5000


def chroma_where(where: MemoryFilter) -> dict[str, Any] | None:
    """Translate a :class:`MemoryFilter` into a Chroma ``where`` clause (None: no condition)."""
    clauses: list[dict[str, Any]] = []
    for name, allowed in where.conditions().items():
        if isinstance(allowed, bool):
            clauses.append({name: {"$eq": allowed}})
        elif len(allowed) == 1:
            clauses.append({name: {"$eq": allowed[0]}})
        else:
            clauses.append({name: {"$in": list(allowed)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class ChromaMemory(ExperimentMemory):
    """Experiment memory backed by Chroma.

    Persistent by default in ``$AUTOSCI_CACHE_DIR/memory`` (``~/.cache/autosci_graph/memory``), one
    store shared by every run on the machine, so a new run of a task starts knowing its old dead
    ends. A folder takes one writing process at a time (Chroma keeps its index in the writer's
    memory; see ``_lock``); give ``host``/``port`` to use a Chroma server for concurrent runs or
    several machines.

    Thread-safe; writes are upserts by record id, chunked below Chroma's batch limit.

    Example:
        >>> mem = ChromaMemory(task="gpt-bpb")  # doctest: +SKIP
        >>> mem.similar_failures("raise the learning rate to 3e-3")  # doctest: +SKIP

    Args:
        path: folder of the persistent store (default :func:`default_memory_dir`).
        task: default task scope of recalls and listings.
        host, port: a Chroma server (``chroma run --host H --port P``); excludes ``path``.
        embeddings: any LangChain ``Embeddings`` (default: offline all-MiniLM-L6-v2). A store
            remembers its model: opening it with another raises ``EmbeddingMismatchError``.
        collection: collection name, to keep several memories in one store.
        ssl, headers: for a remote server.
        read_only: do not take the folder's writer lock (and refuse ``add``): for looking at a
            memory while a run writes it. A local folder takes one writing process at a time.

    Raises:
        MemoryCorruptError: the folder is not a readable Chroma store (it is left untouched).
        EmbeddingMismatchError: the store was built with other embeddings.
        MemoryUnreachableError: the server does not answer.
        MemoryBusyError: another process is writing this folder (use a server for concurrent runs).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        task: str | None = None,
        host: str | None = None,
        port: int | None = None,
        embeddings: Any = None,
        collection: str = DEFAULT_COLLECTION,
        ssl: bool = False,
        headers: dict[str, str] | None = None,
        read_only: bool = False,
    ) -> None:
        super().__init__(task=task, embeddings=embeddings)
        if path is not None and (host is not None or port is not None):
            raise SettingsError("give the memory either a path (local store) or host/port (Chroma server), not both")
        self._write_lock = threading.Lock()
        self._read_only = read_only
        self._locked = False
        self._remote = host is not None or port is not None
        self._host, self._port = host or "127.0.0.1", int(port or 8000)
        self._path = None if self._remote else Path(path).expanduser() if path is not None else default_memory_dir()
        self._client = self._connect(ssl, headers)
        self._collection = self._open_collection(collection)
        self._batch = self._max_batch()
        if self._path is not None and not read_only:
            # Taken only once the store opened cleanly: a corrupt folder must not gain a lock file.
            _lock.acquire(self._path)
            self._locked = True

    # -- opening ---------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return f"chroma server {self._host}:{self._port}" if self._remote else str(self._path)

    def _connect(self, ssl: bool, headers: dict[str, str] | None) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self._remote:
            try:
                client = chromadb.HttpClient(host=self._host, port=self._port, ssl=ssl, headers=headers, settings=settings)
                client.heartbeat()
            except Exception as exc:
                raise self._unreachable(exc) from exc
            return client
        path = self._path
        assert path is not None
        if path.exists() and not path.is_dir():
            raise MemoryCorruptError(f"memory path {path} is a file, not a folder: pass another path (the file was not touched)")
        if path.is_dir() and any(p.name != _lock.LOCK_NAME for p in path.iterdir()) and not (path / "chroma.sqlite3").is_file():
            raise MemoryCorruptError(
                f"{path} is not empty and holds no Chroma store (no chroma.sqlite3): refusing to write into it; "
                "pass an empty or new folder as the memory path"
            )
        path.mkdir(parents=True, exist_ok=True)
        try:
            try:
                return chromadb.PersistentClient(path=str(path), settings=settings)
            except ValueError as exc:
                if "different settings" not in str(exc):
                    raise
                # Other code in this process (langchain-chroma, a notebook) already opened this folder
                # with Chroma's default settings; Chroma allows one configuration per path, so share it.
                return chromadb.PersistentClient(path=str(path))
        except Exception as exc:
            raise self._corrupt(exc) from exc

    def _open_collection(self, name: str) -> Any:
        from chromadb.errors import NotFoundError

        wanted = self.embedding_id
        with self._errors():
            try:
                col = self._client.get_collection(name, embedding_function=None)
            except NotFoundError:
                meta = {_EMBEDDING_KEY: wanted, _SCHEMA_KEY: SCHEMA_VERSION}
                col = self._client.get_or_create_collection(
                    name, embedding_function=None, metadata=meta, configuration={"hnsw": {"space": "cosine"}}
                )
                log.info("created memory collection %r at %s (embeddings %s)", name, self.location, wanted)
            # Reading a row forces Chroma to open the store's files now, so a damaged store fails here
            # with a clear message rather than later in the middle of a run.
            col.peek(limit=1)
        meta = col.metadata or {}
        recorded = meta.get(_EMBEDDING_KEY)
        if recorded is None:
            raise MemoryCorruptError(
                f"collection {name!r} at {self.location} was not created by autosci_graph (no embedding model recorded): "
                "pass another collection= or path; nothing was changed"
            )
        if recorded != wanted:
            raise EmbeddingMismatchError(
                f"memory {name!r} at {self.location} was built with embeddings {recorded!r}, but this memory uses "
                f"{wanted!r}; vectors from two models cannot be compared. Open it with the same embeddings, or use "
                "another path or collection= for the new model (nothing was deleted or overwritten)"
            )
        return col

    def _max_batch(self) -> int:
        try:
            return max(1, min(int(self._client.get_max_batch_size()), _FALLBACK_BATCH))
        except Exception:  # older servers do not report it; the documented local limit is safe
            return _FALLBACK_BATCH

    def _unreachable(self, exc: BaseException) -> MemoryUnreachableError:
        return MemoryUnreachableError(
            f"no Chroma server answers at {self._host}:{self._port} ({type(exc).__name__}: {str(exc)[:160]}); "
            f"start one with `chroma run --path DIR --host {self._host} --port {self._port}`, "
            "or drop host/port to use a local folder"
        )

    def _corrupt(self, exc: BaseException) -> MemoryCorruptError:
        return MemoryCorruptError(
            f"memory at {self._path} cannot be read as a Chroma store ({type(exc).__name__}: {str(exc)[:200]}). "
            f"It was left untouched: move it aside (mv {self._path} {self._path}.broken) to start a new memory, "
            "or pass another path"
        )

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn a lost server or an unreadable store into the project's errors."""
        try:
            yield
        except (EmbeddingMismatchError, MemoryBusyError, MemoryCorruptError, MemoryUnreachableError):
            raise
        except Exception as exc:
            from chromadb.errors import ChromaError

            if self._remote and not isinstance(exc, ChromaError | ValueError):
                raise self._unreachable(exc) from exc  # transport errors (httpx) mean the server is gone
            if not self._remote and isinstance(exc, ChromaError) and "database" in str(exc).lower():
                raise self._corrupt(exc) from exc
            raise

    # -- backend hooks ---------------------------------------------------------------------------

    def _upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        if self._read_only:
            raise SettingsError(f"memory at {self.location} was opened read_only=True; open it without read_only to add records")
        # One writer at a time per process: Chroma's local store serialises writes anyway, and this
        # keeps two threads from interleaving the chunks of one logical add.
        with self._write_lock, self._errors():
            for start in range(0, len(records), self._batch):
                chunk = records[start : start + self._batch]
                self._collection.upsert(
                    ids=[r.id for r in chunk],
                    embeddings=vectors[start : start + self._batch],
                    documents=[r.document() for r in chunk],
                    metadatas=[metadata_of(r) for r in chunk],
                )

    def _query(self, vector: np.ndarray, k: int, where: MemoryFilter) -> list[RecallHit]:
        with self._errors():
            found = self._collection.query(
                query_embeddings=[vector], n_results=k, where=chroma_where(where), include=["metadatas", "distances"]
            )
        metas = (found.get("metadatas") or [[]])[0]
        dists = (found.get("distances") or [[]])[0]
        # Chroma's cosine distance is 1 - cosine similarity.
        return [RecallHit(record=record_from_metadata(m), score=1.0 - float(d)) for m, d in zip(metas, dists, strict=True)]

    def get(self, ids: Iterable[str]) -> list[MemoryRecord]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        with self._errors():
            found = self._collection.get(ids=wanted, include=["metadatas"])
        by_id = {i: record_from_metadata(m) for i, m in zip(found["ids"], found["metadatas"] or [], strict=True)}
        return [by_id[i] for i in wanted if i in by_id]

    def _pages(self, where: MemoryFilter, include: list[str]) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            with self._errors():
                page = self._collection.get(where=chroma_where(where), include=include, limit=self._batch, offset=offset)
            yield page
            if len(page["ids"]) < self._batch:
                return
            offset += self._batch

    def _scan(self, where: MemoryFilter) -> list[MemoryRecord]:
        return [record_from_metadata(m) for page in self._pages(where, ["metadatas"]) for m in page["metadatas"] or []]

    def count(self, where: Any = None) -> int:
        scoped = self._scope(where)
        if chroma_where(scoped) is None:
            with self._errors():
                return int(self._collection.count())
        return sum(len(page["ids"]) for page in self._pages(scoped, []))

    def close(self) -> None:
        # Chroma keeps one system per local path for the whole process; dropping our references is
        # all that is safe (``clear_system_cache`` would close every other memory's client too).
        self._collection = None
        self._client = None
        if self._locked and self._path is not None:
            self._locked = False
            _lock.release(self._path)
