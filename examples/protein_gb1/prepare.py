"""
Prepare the GB1 fitness data (Olson et al. 2014, as shipped in the mavenn 1.1.4 wheel).

The data is 530,737 double mutants of the 55-residue GB1 domain with a log-enrichment fitness y.
Random row splits are far too easy (a linear model reaches Spearman ~0.96), so the folds are by
mutated POSITION, like ProteinGym's "modulo" scheme: position p (0-based) goes to fold p % 5, so
every mutated position belongs to exactly one fold. A double mutant is kept only when BOTH of its
positions fall in the same fold; the other ~81% of doubles would leak a position across folds and
are dropped. That leaves about 98k variants.

    fold 0 -> test   (written only to AUTOSCI_FINAL_DIR, the harness's held-out evaluation)
    fold 1 -> val    (the metric agents optimize)
    folds 2-4 -> train

Outputs (numpy .npz with `tokens` int8 [N, 55] in ALPHABET order, `y` float32 [N], `positions`
int8 [N, 2]):
    $AUTOSCI_DATA_DIR/train.npz, val.npz, meta.json
    $AUTOSCI_FINAL_DIR/test.npz, manifest.json (sha256 of every prepared file, checked by the harness)

Deterministic: running it again writes the same arrays (the harness caches them and reruns this
only when this script changes). Offline: point AUTOSCI_MAVENN_WHEEL at a copy of
mavenn-1.1.4-py3-none-any.whl (`pip download --no-deps mavenn==1.1.4`).
"""

import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MAVENN_VERSION = "1.1.4"
MEMBER = "mavenn/examples/datasets/gb1_data.csv.gz"
ALPHABET = "ACDEFGHIKLMNPQRSTVWY"
N_FOLDS = 5
TEST_FOLD, VAL_FOLD = 0, 1


def fold_of_position(position, n_folds=N_FOLDS):
    """ProteinGym-style modulo fold of a 0-based sequence position."""
    return position % n_folds


def assign_folds(positions, n_folds=N_FOLDS):
    """Fold of each variant given its mutated positions ([N, k] int array), or -1 when the
    positions fall in different folds (the variant would leak a position; it is dropped)."""
    positions = np.asarray(positions)
    folds = fold_of_position(positions, n_folds)
    same = (folds == folds[:, :1]).all(axis=1)
    return np.where(same, folds[:, 0], -1)


def wild_type(sequences):
    """The consensus (most common residue per column) is the wild type in a scan of mutants."""
    chars = np.frombuffer("".join(sequences).encode(), dtype=np.uint8).reshape(len(sequences), -1)
    return "".join(chr(np.bincount(col).argmax()) for col in chars.T)


def read_gb1_csv():
    """The raw csv text, from a local wheel (AUTOSCI_MAVENN_WHEEL) or `pip download --no-deps`."""
    wheel = os.environ.get("AUTOSCI_MAVENN_WHEEL")
    if wheel:
        return _read_member(Path(wheel))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"mavenn=={MAVENN_VERSION}", "-d", tmp, "--quiet"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("mavenn-*.whl"))
        if proc.returncode != 0 or not wheels:
            sys.exit(
                f"error: could not download the mavenn {MAVENN_VERSION} wheel that ships the GB1 data.\n"
                f"pip said: {(proc.stderr or proc.stdout).strip()[-800:]}\n"
                f"fix: check access to PyPI, or on a machine that has it run\n"
                f"  pip download --no-deps mavenn=={MAVENN_VERSION}\n"
                f"and set AUTOSCI_MAVENN_WHEEL=/path/to/mavenn-{MAVENN_VERSION}-py3-none-any.whl")
        return _read_member(wheels[0])


def _read_member(wheel):
    try:
        with zipfile.ZipFile(wheel) as z:
            return gzip.decompress(z.read(MEMBER)).decode()
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        sys.exit(f"error: cannot read {MEMBER} from {wheel} ({exc}); "
                 f"fix: use the mavenn {MAVENN_VERSION} wheel from `pip download --no-deps mavenn=={MAVENN_VERSION}`")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    data_dir = Path(os.environ.get("AUTOSCI_DATA_DIR") or "data")
    final_dir = Path(os.environ.get("AUTOSCI_FINAL_DIR") or "final")
    data_dir.mkdir(parents=True, exist_ok=True)
    final_dir.mkdir(parents=True, exist_ok=True)

    text = read_gb1_csv()
    header, *lines = text.splitlines()
    cols = header.split(",")
    ix, iy = cols.index("x"), cols.index("y")
    rows = [line.split(",") for line in lines]
    seqs = [r[ix] for r in rows]
    y = np.array([float(r[iy]) for r in rows], dtype=np.float32)
    wt = wild_type(seqs)
    lookup = np.full(256, -1, dtype=np.int8)
    lookup[np.frombuffer(ALPHABET.encode(), dtype=np.uint8)] = np.arange(len(ALPHABET))
    chars = np.frombuffer("".join(seqs).encode(), dtype=np.uint8).reshape(len(seqs), len(wt))
    tokens = lookup[chars]
    assert (tokens >= 0).all(), "unexpected residue letter in the GB1 data"
    wt_tokens = lookup[np.frombuffer(wt.encode(), dtype=np.uint8)]
    mutated = tokens != wt_tokens
    n_mut = mutated.sum(1)
    keep = n_mut == 2  # the file holds double mutants only; guard against anything else
    tokens, y, mutated = tokens[keep], y[keep], mutated[keep]
    positions = np.nonzero(mutated)[1].reshape(-1, 2).astype(np.int8)
    folds = assign_folds(positions)

    def save(path, mask):
        np.savez(path, tokens=tokens[mask], y=y[mask], positions=positions[mask])
        return int(mask.sum())

    counts = {
        "train": save(data_dir / "train.npz", folds >= 2),
        "val": save(data_dir / "val.npz", folds == VAL_FOLD),
        "test": save(final_dir / "test.npz", folds == TEST_FOLD),
    }
    meta = {"wild_type": wt, "alphabet": ALPHABET, "n_folds": N_FOLDS, "fold_rule": "position % n_folds",
            "val_fold": VAL_FOLD, "test_fold": TEST_FOLD, "counts": counts, "dropped_cross_fold": int((folds < 0).sum()),
            "source": f"mavenn=={MAVENN_VERSION}:{MEMBER}"}
    (data_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    manifest = {"final": {"test.npz": sha256(final_dir / "test.npz")},
                "data": {name: sha256(data_dir / name) for name in ("train.npz", "val.npz", "meta.json")}}
    (final_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"GB1: {counts} variants (dropped {meta['dropped_cross_fold']} cross-fold doubles) -> {data_dir}")


if __name__ == "__main__":
    main()
