"""Check before compute on the real GPT task (autosci_graph/tools/precheck.py): apply, compile, smoke."""

from __future__ import annotations

from pathlib import Path

import pytest

from autosci_graph.state import Change
from autosci_graph.task import load_task
from autosci_graph.tools.codestate import code_stack
from autosci_graph.tools.precheck import precheck
from autosci_graph.tools.prepare import ensure_prepared

pytestmark = pytest.mark.integration

TASK = load_task(Path(__file__).resolve().parents[2] / "examples" / "gpt_bpb")
GELU = "nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))"


def _edit(new: str) -> Change:
    edit = f"train.py\n<<<<<<< SEARCH\n        self.mlp = {GELU}\n=======\n        self.mlp = {new}\n>>>>>>> REPLACE\n"
    return Change(diff=code_stack(TASK)(None, edit))


def test_a_good_change_passes_every_check_including_the_smoke_run() -> None:
    data = ensure_prepared(TASK)
    assert TASK.smoke is not None
    assert precheck(TASK, _edit(GELU.replace("nn.GELU()", "nn.SiLU()")), data_dir=data) is None


def test_a_change_that_does_not_compile_is_refused_with_the_line() -> None:
    problem = precheck(TASK, _edit(GELU.replace("nn.GELU(),", "nn.GELU(,")), data_dir=ensure_prepared(TASK))
    assert problem is not None and "does not compile" in problem and "train.py" in problem


def test_a_change_that_compiles_but_breaks_the_run_fails_the_smoke_command() -> None:
    problem = precheck(TASK, _edit(GELU.replace("nn.GELU()", "nn.NoSuchActivation()")), data_dir=ensure_prepared(TASK))
    assert problem is not None and "smoke command failed" in problem and "NoSuchActivation" in problem
