"""
Held-out evaluation of a protein_gb1 champion. Run by the harness only (autosci_graph.final_eval);
this file and the test fold never enter an experiment workspace.

It trains the champion exactly as an experiment does (every argument is passed on to train.py),
asks train.py for its predictions on the test fold's sequences (the labels stay here), and scores
them. train.py never sees AUTOSCI_FINAL_DIR.

    AUTOSCI_FINAL_DIR=... python final_eval.py --seed=0 --arch=local

Prints train.py's output on stderr, then a summary block on stdout:
    ---
    test_spearman: 0.31
    val_spearman: 0.35
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def spearman(a, b):
    """Spearman rank correlation (Pearson correlation of the ranks; ties broken by order)."""
    ra = np.empty(len(a)); ra[np.argsort(a, kind="stable")] = np.arange(len(a))
    rb = np.empty(len(b)); rb[np.argsort(b, kind="stable")] = np.arange(len(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main():
    final_dir = Path(os.environ["AUTOSCI_FINAL_DIR"])
    test = np.load(final_dir / "test.npz")
    env = {k: v for k, v in os.environ.items() if k != "AUTOSCI_FINAL_DIR"}
    with tempfile.TemporaryDirectory() as tmp:
        inputs, preds = Path(tmp) / "inputs.npz", Path(tmp) / "predictions.npy"
        np.savez(inputs, tokens=test["tokens"])  # sequences only: no labels leave this script
        cmd = [sys.executable, "train.py", *sys.argv[1:], f"--predict_in={inputs}", f"--predict_out={preds}"]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sys.stderr.write(proc.stdout)
        if proc.returncode != 0 or not preds.exists():
            sys.exit(f"final_eval: training failed (exit status {proc.returncode})")
        p = np.load(preds)
    assert p.shape == test["y"].shape, f"expected {test['y'].shape} predictions, got {p.shape}"
    test_spearman = spearman(p, test["y"]) if np.isfinite(p).all() else float("nan")
    val = re.findall(r"^val_spearman:\s*(\S+)\s*$", proc.stdout, flags=re.M)
    print("---")
    print(f"test_spearman: {test_spearman:.6f}")
    print(f"val_spearman: {val[-1] if val else 'nan'}")
    print(f"num_test: {len(p)}")


if __name__ == "__main__":
    main()
