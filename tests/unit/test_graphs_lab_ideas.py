"""Offline code changes: the lab tries a task's ideas/ in the teams that own them and stacks them."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

from lab_helpers import champion, proposal, run_lab, stable_normal

from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.team import check_code
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Change
from autosci_graph.task import ResearchTask
from autosci_graph.tools.codestate import files_at
from autosci_graph.tools.inprocess import FunctionExecutor
from autosci_graph.tools.patches import unified_diff

TRAIN = """import math

LR = 1e-3
ACTIVATION = "tanh"


def activation():
    return ACTIVATION


def learning_rate():
    return LR


NORM = "layernorm"


def main():
    print(LR, ACTIVATION, NORM)
"""


def _task(tmp_path: Path) -> ResearchTask:
    (tmp_path / "train.py").write_text(TRAIN)
    ideas = tmp_path / "ideas"
    ideas.mkdir()
    for name, axis, old, new in [("gelu", "activation", 'ACTIVATION = "tanh"', 'ACTIVATION = "gelu"'),
                                 ("rmsnorm", "norm", 'NORM = "layernorm"', 'NORM = "rmsnorm"')]:
        diff = unified_diff({"train.py": TRAIN}, {"train.py": TRAIN.replace(old, new)})
        (ideas / f"{name}.diff").write_text(f"# description: {new}\n# axis: {axis}\n{diff}")
    return ResearchTask(name="ideas-synth", root=tmp_path, command=("python", "train.py"), metric={"name": "loss"},
                        editable=("train.py",), seeds=(0, 1, 2, 3),
                        knobs={"lr": {"type": "float", "low": 1e-4, "high": 1.0, "default": 1e-3, "log": True}})


def _loss(change: Change, seed: int) -> float:
    diff = change.diff or ""
    code = 0.6 * ('+ACTIVATION = "gelu"' in diff) + 0.4 * ('+NORM = "rmsnorm"' in diff)
    return (math.log10(float(change.knobs["lr"])) + 2) ** 2 + 2.0 - code + 0.02 * stable_normal(seed, sorted(change.knobs.items()), diff)


def test_an_idea_is_kept_and_a_later_change_stacks_on_it(tmp_path: Path) -> None:
    task = _task(tmp_path)
    settings = LabSettings(n_teams=2, max_experiments=30, stop_after_no_keep=None, seed=0)
    final, _ = run_lab(task, _loss, SearchScientist(), settings, slots=2, synchronous=True)
    promotions = [e for e in final["events"] if e["type"] == "promotion"]
    champions = [next(c for c in final["candidates"] if c["candidate_id"] == p["experiment_id"]) for p in promotions]
    # An idea is kept when a promoted champion's code carries it (it may have run on the lab's
    # lead and been promoted together with the knob step taken from there).
    first = next((i for i, c in enumerate(champions) if c["change"]["diff"]), None)
    assert first is not None, "no idea was kept"
    kept_lines = [ln for ln in champions[first]["change"]["diff"].splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    # Every champion after the first code keep still carries that code: later changes stacked on it.
    later = champions[first + 1:]
    assert later, "nothing was kept after the first idea"
    for c in later:
        assert all(ln in (c["change"]["diff"] or "") for ln in kept_lines)
    kept_line = kept_lines[0]
    # The final champion's files are the original with every accepted change applied.
    text = files_at(task, final["champion"]["diff"])["train.py"]
    assert kept_line[1:] in text and text != TRAIN
    # Ideas run in the teams that own their axis.
    teams = {t["team_id"]: t for t in final["teams"]}
    for s in final["submitted"]:
        if s["kind"] == "explore" and s["proposal"]["axis"].startswith("code:"):
            assert s["proposal"]["axis"] in teams[s["proposal"]["team"]]["hypothesis"]["axes"]


def test_smoke_checks_run_one_at_a_time_whatever_the_teams_thinking_at_once(tmp_path: Path) -> None:
    """Checks cost no slot, so the lab bounds them instead: three teams checking code at once
    run their smoke commands one after another (each sleeps 1 s: in parallel they would all be
    done in about 1 s; one at a time cannot take less than 3)."""
    task = _task(tmp_path).model_copy(update={"smoke": ("{python}", "-c", "import time; time.sleep(1)")})
    ctx = LabContext(task=task, executor=FunctionExecutor(_loss, metric_name="loss"), scientist=SearchScientist())
    gelu = unified_diff({"train.py": TRAIN}, {"train.py": TRAIN.replace('"tanh"', '"gelu"')})
    proposals = [proposal("code:activation", "code", pid=f"p{i}").model_copy(update={"change": Change(diff=gelu)}) for i in range(3)]
    base = champion(task)
    reviews: list[object] = []
    threads = [threading.Thread(target=lambda p: reviews.append(check_code(ctx, p, base)), args=(p,)) for p in proposals]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reviews == [None, None, None]  # every check passed
    assert time.monotonic() - start >= 3.0
