"""ChromaMemory beyond the contract: bad stores, other embeddings, servers that do not answer, batches."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from autosci_graph.errors import AutosciError, ErrorCode, SettingsError
from autosci_graph.memory.chroma import ChromaMemory
from autosci_graph.memory.errors import EmbeddingMismatchError, MemoryCorruptError, MemoryUnreachableError
from autosci_graph.memory.record import MemoryRecord


def _recs(n: int, task: str = "t") -> list[MemoryRecord]:
    return [MemoryRecord(task=task, run_id="r", experiment_id=f"e{i}", status="ok", change=f"setting {i}") for i in range(n)]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _fake() -> DeterministicFakeEmbedding:
    return DeterministicFakeEmbedding(size=16)


def test_corrupt_store_is_reported_and_left_untouched(tmp_path: Path) -> None:
    store = tmp_path / "memory"
    with ChromaMemory(store, embeddings=_fake()) as mem:
        mem.add(_recs(3))
    (store / "chroma.sqlite3").write_bytes(b"this is not a database" * 50)
    before = _snapshot(store)
    with pytest.raises(MemoryCorruptError) as info:
        ChromaMemory(store, embeddings=_fake())
    message = str(info.value)
    assert info.value.code is ErrorCode.MEMORY_CORRUPT
    assert str(store) in message and "left untouched" in message and "mv " in message
    assert _snapshot(store) == before


def test_a_folder_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("keep me")
    with pytest.raises(MemoryCorruptError, match="no chroma.sqlite3"):
        ChromaMemory(folder, embeddings=_fake())
    assert sorted(p.name for p in folder.iterdir()) == ["todo.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(MemoryCorruptError, match="is a file"):
        ChromaMemory(a_file, embeddings=_fake())
    assert a_file.read_text() == "x"


def test_other_embedding_model_is_refused_and_nothing_is_lost(tmp_path: Path) -> None:
    store = tmp_path / "memory"
    with ChromaMemory(store, embeddings=_fake()) as mem:
        mem.add(_recs(5))
    before = _snapshot(store)
    # The default model (MiniLM) against a store made by the fake model: no vectors may mix.
    with pytest.raises(EmbeddingMismatchError) as info:
        ChromaMemory(store)
    message = str(info.value)
    assert info.value.code is ErrorCode.MEMORY_EMBEDDING_MISMATCH
    assert "DeterministicFakeEmbedding" in message and "all-MiniLM-L6-v2" in message and "nothing was deleted" in message
    assert _snapshot(store) == before
    with ChromaMemory(store, embeddings=_fake()) as again:  # the right model still opens it, intact
        assert again.count() == 5


def test_unreachable_server_names_host_and_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: nothing answers there
        with pytest.raises(MemoryUnreachableError) as info:
            ChromaMemory(host="127.0.0.1", port=port, embeddings=_fake())
    message = str(info.value)
    assert info.value.code is ErrorCode.MEMORY_UNREACHABLE
    assert f"127.0.0.1:{port}" in message and f"chroma run --path DIR --host 127.0.0.1 --port {port}" in message
    assert isinstance(info.value, AutosciError)


def test_path_and_server_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not both"):
        ChromaMemory(tmp_path, host="localhost", port=8000)


def test_adds_are_chunked_below_the_batch_limit(tmp_path: Path) -> None:
    mem = ChromaMemory(tmp_path / "m", embeddings=_fake())
    assert mem._batch <= 5461
    calls: list[int] = []
    real_upsert = mem._collection.upsert

    def spy(**kw: object) -> None:
        calls.append(len(kw["ids"]))  # type: ignore[arg-type]
        real_upsert(**kw)

    mem._collection.upsert = spy  # type: ignore[method-assign]
    n = 6000  # more than Chroma accepts in one call locally (5461)
    assert mem.add(_recs(n)) == n
    assert sum(calls) == n and len(calls) == 2 and max(calls) <= mem._batch
    assert mem.count() == n
    assert len(mem.records({"task": "t"})) == n  # listing pages through more than one batch too


def test_default_location_follows_the_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOSCI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AUTOSCI_MEMORY_DIR", raising=False)
    with ChromaMemory(embeddings=_fake(), task="gpt") as mem:
        mem.add(_recs(2, task="gpt"))
        assert mem.location == str(tmp_path / "cache" / "memory")
    assert (tmp_path / "cache" / "memory" / "chroma.sqlite3").is_file()
    # A later run of the same task, with no path given, finds what the earlier one wrote.
    with ChromaMemory(embeddings=_fake(), task="gpt") as later:
        assert later.count() == 2


def test_collection_made_elsewhere_is_refused(tmp_path: Path) -> None:
    import chromadb

    client = chromadb.PersistentClient(path=str(tmp_path / "m"))
    client.create_collection("foreign", embedding_function=None)
    with pytest.raises(MemoryCorruptError, match="not created by autosci_graph"):
        ChromaMemory(tmp_path / "m", embeddings=_fake(), collection="foreign")
