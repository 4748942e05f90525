"""The champion as a code state (autosci_graph/tools/codestate.py): increments stack."""

from __future__ import annotations

from pathlib import Path

from autosci_graph.lab.changes import change_to_run
from autosci_graph.state import Champion, Change
from autosci_graph.task import load_task
from autosci_graph.tools.codestate import code_stack, files_at

TASK = load_task(Path(__file__).resolve().parents[2] / "examples" / "gpt_bpb")

GELU_TO_SILU = """train.py
<<<<<<< SEARCH
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))
=======
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.SiLU(), nn.Linear(4 * n_embd, n_embd))
>>>>>>> REPLACE
"""


def test_a_second_code_change_stacks_on_the_first() -> None:
    stack = code_stack(TASK)
    first = stack(None, GELU_TO_SILU)
    assert first.startswith("--- a/train.py") and "+" in first and "nn.SiLU()" in first
    champion = Champion(experiment_id="e1", config=TASK.default_config(), diff=first, metric=1.0, seeds=[0])
    files = files_at(TASK, champion.diff)
    # The increment is written against the champion's files (SiLU present), in a bare-@@ diff.
    target = next(line for line in files["train.py"].splitlines() if "nn.SiLU()" in line)
    increment = "@@\n-" + target + "\n+" + target.replace("4 * n_embd", "3 * n_embd") + "\n"
    change = change_to_run(champion, Change(diff=increment), stack=stack)
    final = files_at(TASK, change.diff)["train.py"]
    assert "nn.SiLU()" in final and "3 * n_embd" in final  # both accepted changes are in the code
    assert "nn.GELU()" not in final
    assert files_at(TASK, None)["train.py"] != final  # the original task files are untouched
