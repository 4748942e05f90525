"""Memory that outlives a process: one process writes, another recalls (and the reverse)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autosci_graph.errors import AutosciError

from autosci_graph.memory.base import MemoryRecord
from autosci_graph.memory.chroma import ChromaMemory

pytestmark = pytest.mark.integration

WRITER = """
import sys
from autosci_graph.memory.chroma import ChromaMemory
from autosci_graph.memory.record import MemoryRecord
mem = ChromaMemory(sys.argv[1], task="gpt-bpb")
recs = [
    MemoryRecord(task="gpt-bpb", run_id="run-1", experiment_id="e1", status="oom", axis="batch_size",
                 change="batch size 2048", error="CUDA out of memory"),
    MemoryRecord(task="gpt-bpb", run_id="run-1", experiment_id="e2", status="ok", outcome="keep",
                 change="cosine learning-rate decay", metric=1.30, champion_metric=1.35, delta=-0.05),
]
mem.add(recs)
mem.add(recs)  # a resumed run writes them again
"""

READER = """
import json, sys
from autosci_graph.memory.chroma import ChromaMemory
mem = ChromaMemory(sys.argv[1])
hits = mem.recall(sys.argv[2], k=1)
print(json.dumps({"count": mem.count(), "top": hits[0].record.experiment_id, "score": hits[0].score}))
"""


def test_a_new_process_recalls_what_an_earlier_one_wrote(tmp_path: Path) -> None:
    store = tmp_path / "memory"
    subprocess.run([sys.executable, "-c", WRITER, str(store)], check=True, timeout=120)
    with ChromaMemory(store, task="gpt-bpb") as mem:
        assert mem.count() == 2
        fails = mem.similar_failures("make the batch much larger")
        assert [h.record.experiment_id for h in fails] == ["e1"]
        assert mem.successes()[0].change == "cosine learning-rate decay"
        mem.add(MemoryRecord(task="gpt-bpb", run_id="run-2", experiment_id="e1", status="diverged", change="learning rate 0.01"))
    out = subprocess.run(
        [sys.executable, "-c", READER, str(store), "loss exploded with a big learning rate"],
        check=True, timeout=120, capture_output=True, text=True,
    )
    seen = json.loads(out.stdout)
    assert seen["count"] == 3 and seen["top"] == "e1" and seen["score"] > 0.3


def test_minilm_matches_sentence_transformers() -> None:
    """The offline default reproduces sentence-transformers' own encoding of the same weights."""
    from sentence_transformers import SentenceTransformer

    from autosci_graph.memory import _minilm
    from autosci_graph.memory.embeddings import MiniLMEmbeddings

    texts = ["learning rate 6e-3 diverged", "GPU out of memory at batch size 1024", "rotary position embeddings helped"]
    reference = SentenceTransformer(str(_minilm.bundled_model_dir()), device="cpu").encode(texts, normalize_embeddings=True)
    ours = MiniLMEmbeddings(cache_size=0).encode(texts)
    assert np.abs(np.asarray(reference) - ours).max() < 1e-4


SECOND_WRITER = """
import sys
from langchain_core.embeddings import DeterministicFakeEmbedding
from autosci_graph.errors import AutosciError
from autosci_graph.memory.chroma import ChromaMemory
from autosci_graph.memory.record import MemoryRecord
try:
    mem = ChromaMemory(sys.argv[1], embeddings=DeterministicFakeEmbedding(size=16), read_only=sys.argv[2] == "ro")
except AutosciError as exc:
    print(exc)
    sys.exit(3)
print(mem.count())
if sys.argv[2] == "rw":
    mem.add(MemoryRecord(task="t", run_id="second", experiment_id="e1", status="ok"))
"""


def test_a_second_writing_process_is_refused_while_readers_still_read(tmp_path: Path) -> None:
    """Chroma keeps a folder's index in the writer's memory; two writers would lose vectors."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    store = tmp_path / "memory"

    def second(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", SECOND_WRITER, str(store), mode], capture_output=True, text=True, timeout=120)

    with ChromaMemory(store, embeddings=DeterministicFakeEmbedding(size=16)) as mem:
        mem.add(MemoryRecord(task="t", run_id="first", experiment_id="e1", status="ok"))
        busy = second("rw")
        assert busy.returncode == 3, busy.stderr
        assert "[MEMORY_UNREACHABLE]" in busy.stdout and str(store) in busy.stdout and f"pid {__import__('os').getpid()}" in busy.stdout
        assert "chroma run --path" in busy.stdout
        reader = second("ro")
        assert reader.returncode == 0 and reader.stdout.strip() == "1"
        again = ChromaMemory(store, embeddings=DeterministicFakeEmbedding(size=16))  # same process: shares the lock
        again.close()
        assert second("rw").returncode == 3  # still held by ``mem``
    done = second("rw")  # released on close
    assert done.returncode == 0, done.stdout + done.stderr
    with ChromaMemory(store, embeddings=DeterministicFakeEmbedding(size=16), read_only=True) as mem:
        assert mem.count() == 2
        with pytest.raises(AutosciError, match="read_only"):
            mem.add(MemoryRecord(task="t", run_id="x", experiment_id="e", status="ok"))
