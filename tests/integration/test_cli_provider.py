"""A ``provider:model`` string on the CLI and in Python, against a local OpenAI-compatible server.

The server (started by the test) plays every agent from a script keyed on the role in the system
prompt; the experiments are real subprocess runs of a tiny task folder. A provider whose package
is missing gives the install command and exit status 2, without a traceback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from itertools import cycle
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from autosci_graph import LabContext, LabSettings, LLMScientist, build_lab_graph, load_task
from autosci_graph.runner import load_state
from autosci_graph.tools.local import LocalExecutor
from tests.support.openai_server import OpenAICompatServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tests" / "integration" / "tasks" / "quadratic"
ORGANIZER, PROPOSER, CRITIC = "organizing the lab's teams", "an experimenter on team", "reviewing a proposal"
PROMPT_TOKENS, COMPLETION_TOKENS = 50, 10


class Agents:
    """Scripted answers per role: teams on ``lr`` and ``width``; proposals raise ``lr`` toward its
    optimum (1e-2) and try wider models; the critic approves ``lr`` moves and rejects ``width`` ones."""

    def __init__(self) -> None:
        self.lrs = cycle([0.004, 0.01, 0.006, 0.008, 0.012, 0.005, 0.009, 0.007])
        self.widths = cycle([64, 128, 48, 96])

    def __call__(self, body: dict[str, Any]) -> str:
        system, last = body["messages"][0]["content"], body["messages"][-1]["content"]
        if ORGANIZER in system:
            return json.dumps({"hypotheses": [
                {"statement": "The learning rate is far below its optimum", "prediction": "loss drops by 0.5 or more",
                 "falsification": "three lr increases fail to beat the champion", "axes": ["lr"], "promise": 0.9},
                {"statement": "A wider model fits better", "prediction": "loss drops by 0.05",
                 "falsification": "three width increases fail to beat the champion", "axes": ["width"], "promise": 0.5},
            ], "ranking": [0, 1]})
        if PROPOSER in system:
            return json.dumps({"proposals": [
                {"axis": "lr", "direction": "increase", "knobs": {"lr": next(self.lrs)}, "bold": True,
                 "rationale": "lr 1e-3 is ten times below the usual range", "prediction": "loss falls by about 1"},
                {"axis": "width", "direction": "increase", "knobs": {"width": next(self.widths)},
                 "rationale": "more width, more capacity", "prediction": "loss falls by 0.05"},
            ]})
        if CRITIC in system:
            proposal = last.split("PROPOSAL TO REVIEW:", 1)[-1].split("\n\n", 1)[0]
            if "width" in proposal:
                return json.dumps({"approve": False, "reason": "width showed no effect above the noise floor; reject"})
            return json.dumps({"approve": True, "reason": "lr is far below the measured optimum; large effect expected"})
        return "{}"


def _roles(server: OpenAICompatServer) -> set[str]:
    systems = [r["messages"][0]["content"] for r in server.requests]
    return {role for role in (ORGANIZER, PROPOSER, CRITIC) if any(role in s for s in systems)}


def _autosci(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autosci_graph.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def test_cli_runs_a_lab_with_a_provider_model_string(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with OpenAICompatServer(Agents(), prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS) as server:
        proc = _autosci("run", str(TASK), "--model", "openai-compatible:test-model", "--base-url", server.base_url,
                        "--teams", "2", "--slots", "2", "--max-experiments", "6", "--stop-after-no-keep", "0",
                        "--no-memory", "--run-dir", str(run_dir),
                        # An OpenAI key in the environment must never go to a third-party server.
                        env={"OPENAI_API_KEY": "sk-must-not-leak"})
        served = len(server.requests)
        roles = _roles(server)
        models = {r.get("model") for r in server.requests}
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stop: experiment budget spent (6)" in proc.stdout

    # Every agent role went through the server, under the model name of the provider string.
    assert roles == {ORGANIZER, PROPOSER, CRITIC} and models == {"test-model"}

    # LLM usage is counted and reported: every served reply, at its scripted token counts.
    report = (run_dir / "report.md").read_text()
    match = re.search(r"LLM usage: (\d+) calls, (\d+) tokens", report)
    assert match, report
    assert int(match[1]) == served and int(match[2]) == served * (PROMPT_TOKENS + COMPLETION_TOKENS)

    # The scripted critic rejected every width move, so only lr changes ran; they beat the default.
    _, state = load_state(run_dir)
    explored = [s["proposal"]["change"]["knobs"] for s in state["submitted"] if s["kind"] == "explore"]
    assert explored and all("width" not in knobs for knobs in explored)
    baseline = [e["result"]["metric"] for e in state["log"] if e["kind"] == "baseline"]
    assert state["champion"]["metric"] < min(baseline) - 0.3
    run = json.loads((run_dir / "run.json").read_text())
    assert run["model"] == "openai-compatible:test-model" and "sk-must-not-leak" not in (run_dir / "run.json").read_text()


def test_python_api_with_a_provider_model_string(tmp_path: Path) -> None:
    task = load_task(TASK)
    with OpenAICompatServer(Agents(), prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS) as server:
        scientist = LLMScientist("openai-compatible:test-model", base_url=server.base_url)
        executor = LocalExecutor(task, tmp_path / "run", slots=2)
        ctx = LabContext(task=task, executor=executor, scientist=scientist, poll_s=0.5,
                         settings=LabSettings(n_teams=2, max_experiments=6, stop_after_no_keep=None))
        try:
            final = build_lab_graph().compile(checkpointer=InMemorySaver()).invoke(
                {"run_id": "py"}, context=ctx, config={"configurable": {"thread_id": "py"}, "recursion_limit": 10_000})
        finally:
            executor.close()
        served = len(server.requests)
        roles = _roles(server)
    assert roles == {ORGANIZER, PROPOSER, CRITIC}
    assert final["usage"]["calls"] == served == scientist.total_usage.calls
    assert final["usage"]["input_tokens"] == served * PROMPT_TOKENS
    assert len(final["log"]) == 6
    baseline = [e["result"]["metric"] for e in final["log"] if e["kind"] == "baseline"]
    # Default lr 1e-3 gives loss ≈ 2.0; any approved lr move toward 1e-2 lands below 1.5.
    assert final["champion"]["metric"] < min(baseline) - 0.3


def test_cli_missing_provider_package_prints_the_install_command(tmp_path: Path) -> None:
    args = ["run", str(TASK), "--model", "anthropic:claude-x", "--no-memory", "--run-dir", str(tmp_path / "run")]
    if importlib.util.find_spec("langchain_anthropic") is None:
        proc = _autosci(*args)
    else:  # installed here: make its import fail the way a missing package does
        code = ("import sys; sys.modules['langchain_anthropic'] = None; from autosci_graph.cli import main; "
                f"sys.exit(main({args!r}))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pip install langchain-anthropic" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
