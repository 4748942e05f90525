"""Ctrl-C in ``autosci run``: SIGINT mid-run stops the experiments in flight (their process groups
killed, nothing left alive), exits 130 with the resume command, and leaves a checkpoint; ``--resume``
then runs the stopped experiments again and finishes the budget with nothing lost or repeated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autosci_graph.runner import load_state
from tests.support.cli import finished_results, kill_mid_run
from tests.support.processes import lab_processes, live_groups

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tests" / "integration" / "tasks" / "quadratic"
BUDGET = 8
#: Each run sleeps this long, so the interrupt lands while runs are in flight.
SLEEP_S = 3


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autosci_graph.cli", *args]


def _runs_alive(run_dir: Path) -> dict[int, int]:
    return lab_processes(json.loads((run_dir / "run.json").read_text())["run_id"])


def test_sigint_stops_experiments_and_resume_runs_them_again(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [str(TASK), "--teams", "2", "--slots", "2", "--max-experiments", str(BUDGET), "--stop-after-no-keep", "0",
            "--fixed", f"sleep={SLEEP_S}", "--no-memory", "--run-dir", str(run_dir)]
    proc = subprocess.Popen(_cli("run", *args), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen: dict[int, int] = {}

    def when_running() -> None:  # the runs in flight have their processes up: note their groups
        deadline = time.time() + 60
        while not seen and time.time() < deadline:
            seen.update(_runs_alive(run_dir))
            time.sleep(0.05)
        assert seen, "no experiment process was ever seen running"

    kill_mid_run(proc, run_dir, timeout=300, before_kill=when_running, sig=signal.SIGINT, exit_timeout=60)
    interrupted_at = time.time()
    before = finished_results(run_dir)  # read once the lab is gone: a run may finish just before the signal
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 130, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert "interrupted" in last and f"autosci run --resume {run_dir}" in last, last
    assert "Traceback" not in stderr
    # No process of any experiment is left, and none of the process groups seen running.
    assert not _runs_alive(run_dir)
    assert not live_groups(set(seen.values())), "an experiment's process group survived the interrupt"

    # A checkpoint is there, and the stopped experiments have no result (they are not crashes).
    assert (run_dir / "checkpoints.sqlite").is_file()
    _, state = load_state(run_dir)
    assert state["log"] and not state.get("stop_reason")
    stopped = {p.parent.name for p in (run_dir / "experiments").glob("*/request.json")} - set(before)
    assert stopped, "no experiment was in flight at the interrupt"
    assert not [e for e in state["log"] if e["result"]["experiment_id"] in stopped]

    resumed = subprocess.run(_cli("run", "--resume", str(run_dir)), cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _, state = load_state(run_dir)
    ids = [e["result"]["experiment_id"] for e in state["log"]]
    assert len(ids) == BUDGET == len(set(ids)) == len(state["submitted"]), "an experiment was lost or counted twice"
    assert all(e["result"]["status"] == "ok" for e in state["log"]), [e["result"]["status"] for e in state["log"]]
    after = finished_results(run_dir)
    for eid, mtime in before.items():
        assert after.get(eid) == mtime, f"{eid} finished before the interrupt but ran again"
    for eid in stopped:  # the interrupted ones ran again, to a result, after the resume
        assert eid in ids, f"{eid} was stopped by the interrupt and never ran again"
        assert (run_dir / "experiments" / eid / "result.json").stat().st_mtime > interrupted_at
    assert not _runs_alive(run_dir)
