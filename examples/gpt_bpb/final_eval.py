"""
Held-out evaluation of a gpt_bpb champion. Run by the harness only (autosci_graph.final_eval);
this file and the held-out plays never enter an experiment workspace.

It trains the champion exactly as an experiment does (every argument is passed on to train.py)
and has the trained model score a private copy of the held-out text (``--score_file``) the same
way it scores the validation plays. train.py never sees AUTOSCI_FINAL_DIR.

    AUTOSCI_FINAL_DIR=... python final_eval.py --seed=0 --lr=3e-3

Prints train.py's output on stderr, then a summary block on stdout:
    ---
    test_bpb: 2.41
    val_bpb: 2.38
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def last(name, text):
    found = re.findall(rf"^{name}:\s*(\S+)\s*$", text, flags=re.M)
    return found[-1] if found else "nan"


def main():
    final_dir = Path(os.environ["AUTOSCI_FINAL_DIR"])
    env = {k: v for k, v in os.environ.items() if k != "AUTOSCI_FINAL_DIR"}
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "heldout.bin"
        shutil.copyfile(final_dir / "test.bin", text)
        cmd = [sys.executable, "train.py", *sys.argv[1:], f"--score_file={text}"]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stderr.write(proc.stdout)
    test_bpb = last("score_bpb", proc.stdout)
    if proc.returncode != 0 or test_bpb == "nan":
        sys.exit(f"final_eval: training or scoring failed (exit status {proc.returncode})")
    print("---")
    print(f"test_bpb: {float(test_bpb):.6f}")
    print(f"val_bpb: {last('val_bpb', proc.stdout)}")
    print(f"steps: {last('steps', proc.stdout)}")


if __name__ == "__main__":
    main()
