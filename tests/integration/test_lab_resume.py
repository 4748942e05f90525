"""Crash and resume: the lab process is SIGKILLed during an experiment, resumed from its SQLite
checkpoint, and finishes the budget without losing or repeating a finished experiment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autosci_graph.runner import load_state
from tests.support.cli import finished_results, kill_mid_run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 8
ARGS = ["examples/gpt_bpb", "--teams", "2", "--slots", "2", "--max-experiments", str(BUDGET), "--stop-after-no-keep", "0",
        "--fixed", "time_budget=0", "--fixed", "max_steps=40", "--fixed", "eval_bytes=8192"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autosci_graph.cli", *args]


def _marked_processes(run_dir: Path) -> list[int]:
    """Live processes started for this run's experiments (they carry the run id in their marker)."""
    run_id = load_state(run_dir)[0].run_id
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if f"AUTOSCI_RUN_ID={run_id}".encode() in env and state not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def test_sigkill_mid_experiment_then_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cli("run", *ARGS, "--run-dir", str(run_dir), "--memory-path", str(tmp_path / "mem")),
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = kill_mid_run(proc, run_dir, timeout=400)

    resumed = subprocess.run(_cli("run", "--resume", str(run_dir)), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    _, state = load_state(run_dir)
    ids = [e["result"]["experiment_id"] for e in state["log"]]
    assert len(state["submitted"]) == BUDGET
    assert len(ids) == BUDGET and len(set(ids)) == BUDGET, "an experiment was lost or counted twice"
    after = finished_results(run_dir)
    for eid, mtime in before.items():
        assert after.get(eid) == mtime, f"{eid} finished before the crash but ran again"

    # The champion is the best accepted result.
    promotions = [ev for ev in state["events"] if ev["type"] == "promotion"]
    champion = state["champion"]
    if promotions:
        assert champion["experiment_id"] == promotions[-1]["experiment_id"]
        assert promotions[-1]["metric"] == min(ev["metric"] for ev in promotions)
        by_seed = champion["metrics_by_seed"]
        assert champion["metric"] == pytest.approx(sum(by_seed.values()) / len(by_seed))
    baseline = [e["result"]["metric"] for e in state["log"] if e["kind"] == "baseline"]
    if champion["experiment_id"] is not None:  # a promoted champion beat the default; else it is the default, re-measured
        assert champion["metric"] <= sum(baseline) / len(baseline)
    assert not _marked_processes(run_dir), "a training process of the killed lab is still alive"
