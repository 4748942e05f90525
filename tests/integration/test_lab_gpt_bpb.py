"""The lab end to end on the real GPT task, through the CLI: offline scientist, 2 teams, 1 slot."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autosci_graph.memory.chroma import ChromaMemory
from autosci_graph.runner import load_state

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Two baseline seeds, then enough for a candidate to be judged on pooled seeds against the
#: champion (a promotion needs two seeds and a noise estimate with a few degrees of freedom).
BUDGET = 16
# Step-limited training makes each run repeatable for its seed, and one slot makes the order in
# which results arrive fixed, so the lab's decisions are a function of its seed and the results
# alone: the test does not hinge on how busy the machine is or on the run id.
FIXED = ["--fixed", "time_budget=0", "--fixed", "max_steps=40", "--fixed", "eval_bytes=8192"]


def _autosci(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autosci_graph.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_lab_improves_gpt_bpb_and_records_everything(tmp_path: Path) -> None:
    run_dir, mem_dir = tmp_path / "run", tmp_path / "memory"
    proc = _autosci("run", "examples/gpt_bpb", "--teams", "2", "--slots", "1", "--max-experiments", str(BUDGET),
                    "--stop-after-no-keep", "0", "--run-dir", str(run_dir), "--memory-path", str(mem_dir), *FIXED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {run_dir / 'report.md'}" in proc.stdout

    spec, state = load_state(run_dir)
    log = state["log"]
    assert len(state["submitted"]) == BUDGET and len(log) == BUDGET
    assert len({e["result"]["experiment_id"] for e in log}) == BUDGET

    baseline = [e["result"]["metric"] for e in log if e["kind"] == "baseline"]
    default_bpb = sum(baseline) / len(baseline)
    champion = state["champion"]
    assert champion["experiment_id"] is not None, "no change was accepted"
    assert champion["metric"] < default_bpb, (champion, default_bpb)

    with open(run_dir / "results.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["experiment"] for r in rows] == [e["result"]["experiment_id"] for e in log]
    assert rows[0].keys() >= {"commit", "val_bpb", "memory_gb", "status", "description", "team", "hypothesis"}
    # commit is a content hash of what ran: the baseline seeds share one, a changed configuration differs.
    by_id = {r["experiment"]: r["commit"] for r in rows}
    base = {by_id[e["result"]["experiment_id"]] for e in log if e["kind"] == "baseline"}
    assert len(base) == 1 and all(len(c) == 12 for c in by_id.values())
    assert any(by_id[e["result"]["experiment_id"]] not in base for e in log if e["kind"] == "explore")

    memory = ChromaMemory(mem_dir, task="gpt_bpb")
    assert memory.count({"task": "gpt_bpb", "run_id": spec.run_id}) == BUDGET

    png = (run_dir / "progress.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    report = (run_dir / "report.md").read_text()
    assert "## Teams" in report and champion["experiment_id"] in report
