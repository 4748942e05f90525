"""
Held-out evaluation of a protein champion. Run by the harness only (autosci_graph.final_eval);
this file and the test folds never enter an experiment workspace.

It trains the champion exactly as an experiment does (every argument is passed on to train.py),
asks train.py for its predictions on the test fold's sequences (the labels stay here), and scores
them with ProteinGym's metrics. train.py never sees AUTOSCI_FINAL_DIR. The assay and split are
read from the same --assay= / --split= arguments train.py gets (the task's fixed arguments).

    AUTOSCI_FINAL_DIR=... python final_eval.py --seed=0 --assay=tdp43

Prints train.py's output on stderr, then a summary block on stdout:
    ---
    test_spearman: 0.58
    test_ndcg10: 0.86
    test_recall10: 0.41
    val_spearman: 0.78
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fitness_metrics import scores


def argument(name, default):
    """The last --name=value among this script's arguments (train.py reads them the same way)."""
    values = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(f"--{name}=")]
    return values[-1] if values else default


def main():
    final_dir = Path(os.environ["AUTOSCI_FINAL_DIR"])
    test = np.load(final_dir / argument("assay", "gb1") / argument("split", "modulo") / "test.npz")
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
    val = re.findall(r"^val_spearman:\s*(\S+)\s*$", proc.stdout, flags=re.M)
    print("---")
    for name, value in scores(p, test["y"], "test").items():
        print(f"{name}: {value:.6f}")
    print(f"val_spearman: {val[-1] if val else 'nan'}")
    print(f"num_test: {len(p)}")


if __name__ == "__main__":
    main()
