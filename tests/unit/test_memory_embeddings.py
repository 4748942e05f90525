"""Offline embeddings: provenance of the weights, the ONNX export against torch, laziness, replacement."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from autosci_graph.memory import _minilm
from autosci_graph.memory.base import InMemoryMemory, MemoryRecord
from autosci_graph.memory.embeddings import MiniLMEmbeddings, default_embeddings, embedding_identity
from autosci_graph.memory.errors import EmbeddingModelError

TEXTS = [
    "raise the peak learning rate to 6e-3; the loss became NaN at step 140",
    "batch size 1024 ran out of GPU memory",
    "x",
    "Task gb1-fitness (spearman). Tried: random split of mutants. " * 30,  # longer than 256 tokens
]


def test_bundled_weights_match_the_upstream_hashes() -> None:
    _minilm.verify_model_files(_minilm.bundled_model_dir())  # raises on any difference


def test_tampered_model_files_are_refused(tmp_path: Path) -> None:
    src = _minilm.bundled_model_dir()
    shutil.copy(src / "config.json", tmp_path / "config.json")
    _minilm.verify_model_files(tmp_path, ("config.json",))
    config = json.loads((tmp_path / "config.json").read_text())
    config["hidden_act"] = "relu"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(EmbeddingModelError, match="SHA-256"):
        _minilm.verify_model_files(tmp_path, ("config.json",))
    with pytest.raises(EmbeddingModelError, match="missing"):
        _minilm.verify_model_files(tmp_path, ("tokenizer.json",))


def test_onnx_export_matches_torch(tmp_path: Path) -> None:
    """The exported graph computes what sentence-transformers' stack computes in torch."""
    model_dir = _minilm.bundled_model_dir()
    onnx_path = _minilm.export_onnx(model_dir, tmp_path)
    assert _minilm._export_is_current(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["sha256"] == _minilm.EXPECTED_SHA256
    fast = _minilm.OnnxEncoder(onnx_path, model_dir).encode(TEXTS)
    reference = _minilm.TorchEncoder(model_dir).encode(TEXTS)
    assert fast.shape == (len(TEXTS), 384)
    assert np.abs(fast - reference).max() < 1e-4
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_padding_to_the_longest_text_does_not_change_vectors() -> None:
    emb = MiniLMEmbeddings(cache_size=0)
    together = emb.encode(TEXTS)
    alone = np.stack([emb.encode([t])[0] for t in TEXTS])
    assert np.abs(together - alone).max() < 1e-5
    # Meaning, not spelling: the two learning-rate sentences are closer than lr vs memory.
    a, b, c = emb.encode(["learning rate too high, training diverged", "loss exploded to NaN after raising the LR", "GPU out of memory"])
    assert a @ b > a @ c


def test_repeated_texts_are_embedded_once() -> None:
    emb = MiniLMEmbeddings(cache_size=4)
    calls: list[list[str]] = []
    real = emb._get_encoder()

    class Spy:
        def encode(self, texts: list[str]) -> np.ndarray:
            calls.append(texts)
            return real.encode(texts)

    emb._encoder = Spy()
    first = emb.encode(["a", "b", "a"])
    second = emb.encode(["b", "c"])
    assert calls == [["a", "b"], ["c"]]
    assert np.array_equal(first[0], first[2]) and np.array_equal(first[1], second[0])
    assert emb.embed_query("c") == second[1].tolist()


def test_import_stays_light() -> None:
    code = (
        "import sys, autosci_graph.memory as m\n"
        "from autosci_graph.memory import MemoryRecord, ExperimentMemory\n"
        "heavy = [k for k in ('chromadb', 'onnxruntime', 'torch', 'transformers', 'sentence_transformers', 'langchain_core') if k in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_identity_of_embeddings() -> None:
    assert default_embeddings().identity == embedding_identity(MiniLMEmbeddings())
    assert "all-MiniLM-L6-v2" in embedding_identity(default_embeddings())
    assert embedding_identity(DeterministicFakeEmbedding(size=8)) == "langchain_core.embeddings.fake.DeterministicFakeEmbedding"

    class Remote(Embeddings):
        model = "text-embedding-3-small"

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[1.0, 0.0] for _ in texts]

        def embed_query(self, text: str) -> list[float]:
            return [1.0, 0.0]

    assert embedding_identity(Remote()).endswith("Remote:text-embedding-3-small")


def test_any_langchain_embeddings_replace_the_default() -> None:
    class Counting(DeterministicFakeEmbedding):
        calls: int = 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            self.calls += 1
            return super().embed_documents(texts)

    emb = Counting(size=12)
    mem = InMemoryMemory(embeddings=emb)
    rec = MemoryRecord(task="t", run_id="r", experiment_id="e", status="oom", change="batch 4096")
    mem.add(rec)
    assert emb.calls == 1 and mem.embedding_id.endswith("Counting")
    # The fake embeds a text deterministically, so the record's own sentence finds it at similarity 1.
    hit = mem.recall(rec.document(), k=1)[0]
    assert hit.record == rec and hit.score == pytest.approx(1.0, abs=1e-5)


def test_without_onnx_it_falls_back_to_torch_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real_find_spec(name, *a))
    with caplog.at_level("WARNING", logger="autosci_graph.memory._minilm"):
        encoder = _minilm.load_encoder(export_dir=tmp_path / "export")
    assert isinstance(encoder, _minilm.TorchEncoder)
    assert "pip install onnx" in caplog.text
    assert not (tmp_path / "export" / "model.onnx").exists()
    assert encoder.encode(["x"]).shape == (1, 384)
