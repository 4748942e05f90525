"""``autosci run --approve``: the human critic at a terminal, driven as a user would drive it.

The CLI runs as a subprocess whose stdin is a pseudo-terminal (``--approve`` refuses anything
else); the test types the answers into it. The tiny quadratic task and the offline scientist are
deterministic, so every run asks the same questions.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from autosci_graph.runner import load_state

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tests" / "integration" / "tasks" / "quadratic"
FLAGS = ["--teams", "1", "--slots", "1", "--max-experiments", "6", "--stop-after-no-keep", "0", "--no-memory"]


def _autosci_at_a_terminal(*args: str, typed: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``autosci ARGS`` with a pseudo-terminal as stdin, ``typed`` already typed into it
    (``\\x04`` is Ctrl-D: end of input); stdout and stderr are captured."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO  # nothing is echoed back, so nothing needs reading on the master side
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "autosci_graph.cli", *args], cwd=ROOT, stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        os.close(slave)
        slave = -1
        os.write(master, typed.encode())
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def _human(state: dict) -> list[dict]:  # type: ignore[type-arg]
    return [r for r in state["reviews"] if r["reviewer"] == "human"]


def test_approve_prompts_at_the_terminal_and_runs_what_the_human_decided(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # First proposal: a typo (asked again), then a rejection with a reason; second: an edit;
    # everything after: approved. More answers than questions: the rest is never read.
    typed = "maybe\nr too timid a step\ne width=128\n" + "a\n" * 20
    proc = _autosci_at_a_terminal("run", str(TASK), *FLAGS, "--approve", "--run-dir", str(run_dir), typed=typed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "stop: experiment budget spent (6)" in proc.stdout
    # The prompt showed the proposal and its critique, and said why the typo was not an answer.
    assert "[autosci] approval 1/1:" in proc.stderr and "review by analyst-1: approve" in proc.stderr
    assert "'maybe' is not an answer" in proc.stderr

    _, state = load_state(run_dir)
    human = _human(state)
    assert human[0]["approve"] is False and human[0]["reason"] == "too timid a step" and human[0]["rule"] == "human_rejected"
    rejected = human[0]["proposal_id"]
    assert all(s["proposal"]["proposal_id"] != rejected for s in state["submitted"])
    assert human[1]["rule"] == "human_edited"
    edited = {e["proposal"]["proposal_id"]: e for e in state["log"]}[human[1]["proposal_id"] + "-edited"]
    assert edited["result"]["change"]["knobs"]["width"] == 128 and edited["result"]["status"] == "ok"
    # Every exploration that ran was approved by the human (as proposed or edited).
    approved = {r["proposal_id"] for r in human if r["approve"]}
    assert {e["proposal"]["proposal_id"] for e in state["log"] if e["kind"] == "explore"} <= approved
    assert (run_dir / "report.md").is_file()


def test_end_of_input_stops_with_one_line_and_resume_asks_again(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _autosci_at_a_terminal("run", str(TASK), *FLAGS, "--approve", "--run-dir", str(run_dir), typed="\x04")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    error = [line for line in proc.stderr.splitlines() if line.startswith("autosci: error:")]
    assert len(error) == 1 and "stdin ended" in error[0] and f"autosci run --resume {run_dir}" in error[0]
    _, state = load_state(run_dir)  # the checkpoint holds the waiting proposal; nothing of it ran
    assert state["awaiting"] and {s["kind"] for s in state["submitted"]} == {"baseline"}

    again = _autosci_at_a_terminal("run", "--resume", str(run_dir), typed="a\n" * 20)
    assert again.returncode == 0, again.stderr[-3000:]
    _, final = load_state(run_dir)
    assert final["stop_reason"] == "experiment budget spent (6)"
    assert state["awaiting"][0]["proposal_id"] in {e["proposal"]["proposal_id"] for e in final["log"]}


def test_approve_without_a_terminal_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "autosci_graph.cli", "run", str(TASK), *FLAGS, "--approve",
                           "--run-dir", str(tmp_path / "run")], cwd=ROOT, input="a\n", capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autosci: error:")
    assert "--approve asks for each verdict at a terminal, but stdin is not one" in lines[0]
    assert not (tmp_path / "run").exists()
