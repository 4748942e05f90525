"""
Held-out evaluation of a solubility champion. Run by the harness only (autosci_graph.final_eval);
this file and solubility.test.sdf's features never enter an experiment workspace.

It trains the champion exactly as an experiment does (every argument is passed on to train.py),
asks train.py for its predictions on the test molecules' features (the labels stay here), and
scores them. train.py never sees AUTOSCI_FINAL_DIR.

    AUTOSCI_FINAL_DIR=... python final_eval.py --seed=0 --features=descriptors

Prints train.py's output on stderr, then a summary block on stdout:
    ---
    test_rmse: 0.61
    val_rmse: 0.56
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main():
    final_dir = Path(os.environ["AUTOSCI_FINAL_DIR"])
    test = np.load(final_dir / "test.npz")
    env = {k: v for k, v in os.environ.items() if k != "AUTOSCI_FINAL_DIR"}
    with tempfile.TemporaryDirectory() as tmp:
        inputs, preds = Path(tmp) / "inputs.npz", Path(tmp) / "predictions.npy"
        np.savez(inputs, desc=test["desc"], fp=test["fp"])  # features only: no labels leave this script
        cmd = [sys.executable, "train.py", *sys.argv[1:], f"--predict_in={inputs}", f"--predict_out={preds}"]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sys.stderr.write(proc.stdout)
        if proc.returncode != 0 or not preds.exists():
            sys.exit(f"final_eval: training failed (exit status {proc.returncode})")
        p = np.load(preds)
    assert p.shape == test["y"].shape, f"expected {test['y'].shape} predictions, got {p.shape}"
    test_rmse = float(np.sqrt(np.mean((p - test["y"]) ** 2)))
    val = re.findall(r"^val_rmse:\s*(\S+)\s*$", proc.stdout, flags=re.M)
    print("---")
    print(f"test_rmse: {test_rmse:.6f}")
    print(f"val_rmse: {val[-1] if val else 'nan'}")
    print(f"num_test: {len(p)}")


if __name__ == "__main__":
    main()
