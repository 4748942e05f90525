"""A shipped gpt_bpb idea, applied the way an experiment applies it, trains and reports val_bpb."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autosci_graph.ideas import load_ideas
from autosci_graph.task import load_task
from autosci_graph.tools.metrics import parse_metrics
from autosci_graph.tools.prepare import ensure_prepared
from autosci_graph.tools.workspace import apply_diff, make_workspace

pytestmark = pytest.mark.integration

TASK = Path(__file__).resolve().parents[2] / "examples" / "gpt_bpb"
STEPS = ["--time_budget=0", "--max_steps=5", "--eval_bytes=2048"]


def _train(workspace: Path, data_dir: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, float]]:
    env = {**os.environ, "AUTOSCI_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "train.py", "--seed=0", *STEPS], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, parse_metrics(proc.stdout, "val_bpb").metrics


def test_the_rope_idea_trains_without_the_position_table(tmp_path: Path) -> None:
    task = load_task(TASK)
    data_dir = ensure_prepared(task)
    rope = next(i for i in load_ideas(task.root, task.editable) if i.name == "rope")

    default_ws = make_workspace(task, tmp_path / "default")
    idea_ws = make_workspace(task, tmp_path / "rope")
    assert apply_diff(idea_ws, rope.diff, task.editable) == ["train.py"]

    base, base_metrics = _train(default_ws, data_dir)
    proc, metrics = _train(idea_ws, data_dir)
    assert base.returncode == 0 and proc.returncode == 0, proc.stderr[-2000:]
    assert math.isfinite(metrics["val_bpb"]) and 1.0 < metrics["val_bpb"] < 9.0
    assert metrics["steps"] == 5
    # the patch really ran: the learned position table (block_size x n_embd = 64 x 64) is gone
    assert base_metrics["params"] - metrics["params"] == 64 * 64
    assert metrics["val_bpb"] != base_metrics["val_bpb"]
