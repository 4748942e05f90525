"""The protein family's folds and scores: every mutated position belongs to exactly one fold
(ProteinGym's position-based schemes), and the three ProteinGym metrics score what they claim."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

TASK = Path(__file__).resolve().parents[2] / "examples" / "protein"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"protein_{name}", TASK / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_doubles(length: int, n: int = 5000) -> np.ndarray:
    positions = np.sort(np.random.default_rng(0).integers(0, length, size=(n, 2)), axis=1)
    positions = positions[positions[:, 0] != positions[:, 1]]
    singles = np.stack([np.arange(length), np.full(length, -1)], axis=1)
    return np.concatenate([positions, singles])


@pytest.mark.parametrize("split", ["modulo", "contiguous"])
def test_each_position_lands_in_exactly_one_fold(split: str) -> None:
    prep = load("prepare")
    positions = random_doubles(55)
    folds = prep.assign_folds(positions, 55, split)
    kept = folds >= 0
    assert (folds[positions[:, 1] < 0] >= 0).all()  # singles are never dropped
    fold_of: dict[int, int] = {}
    for pair, f in zip(positions[kept], folds[kept]):
        for p in (int(q) for q in pair if q >= 0):
            assert fold_of.setdefault(p, int(f)) == f, f"position {p} appears in folds {fold_of[p]} and {f}"
    assert set(fold_of.values()) == set(range(5)) and len(fold_of) == 55
    rule = (lambda p: p % 5) if split == "modulo" else (lambda p: p * 5 // 55)
    assert all(rule(a) != rule(b) for a, b in positions[~kept])  # dropped = spanning two folds


def test_random_folds_keep_every_variant_in_equal_shares() -> None:
    folds = load("prepare").assign_folds(random_doubles(42), 42, "random")
    assert (folds >= 0).all() and np.ptp(np.bincount(folds)) <= 1


def test_wild_type_is_the_per_column_consensus() -> None:
    assert load("prepare").wild_type(["AAC", "GAC", "AYC", "AAW"]) == "AAC"


def test_parse_finds_single_and_double_mutants_and_stop_codons() -> None:
    text = "x,y\nAAAA,0.0\nCAAA,1.0\nAC*A,2.0\nAAAA,0.5\nAAAG,0.1\n"
    tokens, y, positions, wt = load("prepare").parse(text)
    assert wt == "AAAA" and len(y) == 3  # the wild-type rows are dropped
    assert positions.tolist() == [[0, -1], [1, 2], [3, -1]]
    assert tokens[1, 2] == load("prepare").ALPHABET.index("*")


def test_the_metrics_score_rankings() -> None:
    m = load("fitness_metrics")
    y = np.arange(100.0)
    assert m.spearman(y, y) == pytest.approx(1.0) and m.spearman(-y, y) == pytest.approx(-1.0)
    assert m.ndcg(y, y) == pytest.approx(1.0) and m.ndcg(-y, y) < 0.2
    assert m.top_recall(y, y) == 1.0 and m.top_recall(-y, y) == 0.0
    half = np.where(y >= 95, y, 0.0)  # finds 5 of the 10 best
    assert m.top_recall(half, y) == 0.5
    assert np.isnan(m.spearman(np.full(100, np.nan), y)) and np.isnan(m.ndcg(np.full(100, np.inf), y))
    assert set(m.scores(y, y, "val")) == {"val_spearman", "val_ndcg10", "val_recall10"}


def test_an_unreadable_wheel_fails_with_a_clear_message(tmp_path: Path) -> None:
    bogus = tmp_path / "mavenn-1.1.4-py3-none-any.whl"
    bogus.write_bytes(b"not a zip")
    env = {**os.environ, "AUTOSCI_MAVENN_WHEEL": str(bogus), "AUTOSCI_DATA_DIR": str(tmp_path / "d"), "AUTOSCI_FINAL_DIR": str(tmp_path / "f")}
    proc = subprocess.run([sys.executable, "prepare.py"], cwd=TASK, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "pip download --no-deps mavenn==1.1.4" in proc.stderr and "Traceback" not in proc.stderr
