"""ResearchTask: loading task.toml, clear one-line errors, the search space."""

from __future__ import annotations

from pathlib import Path

import pytest

from autosci_graph.errors import TaskError
from autosci_graph.task import ResearchTask, load_task

GOOD = """
name = "demo"
command = ["{python}", "train.py", "--seed={seed}"]
editable = ["train.py"]
timeout = 30

[fixed]
time_budget = 5

[metric]
name = "val_bpb"
direction = "minimize"

[knobs.lr]
type = "float"
low = 1e-4
high = 1e-1
log = true
default = 1e-3

[knobs.depth]
type = "int"
low = 1
high = 8
default = 2

[knobs.act]
type = "categorical"
choices = ["relu", "gelu"]
default = "gelu"
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "task.toml").write_text(text)
    (tmp_path / "train.py").write_text("print(1)\n")
    return tmp_path


def test_load_and_search_space(tmp_path: Path) -> None:
    task = load_task(_write(tmp_path, GOOD))
    assert task.root == tmp_path.resolve() and task.metric.minimize
    assert task.default_config() == {"lr": 1e-3, "depth": 2, "act": "gelu"}
    assert task.validate_overrides({"lr": "0.01", "depth": "3", "act": "relu"}) == {"lr": 0.01, "depth": 3, "act": "relu"}
    assert task.with_fixed(time_budget=1).fixed == {"time_budget": 1} and task.fixed == {"time_budget": 5}
    assert load_task(tmp_path / "task.toml") == task


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"lr": 1.0}, "outside"), ({"depth": 2.5}, "not an integer"), ({"act": "tanh"}, "not one of"), ({"width": 3}, "unknown knob")],
)
def test_bad_overrides_name_the_knob(tmp_path: Path, overrides: dict[str, object], message: str) -> None:
    task = load_task(_write(tmp_path, GOOD))
    with pytest.raises(ValueError, match=message):
        task.validate_overrides(overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda s: s.replace('name = "val_bpb"', "name = 3"), "metric.name"),
        (lambda s: s.replace('direction = "minimize"', 'direction = "down"'), "metric.direction"),
        (lambda s: s.replace("default = 1e-3", "default = 5.0"), "knobs.lr"),
        (lambda s: s.replace('type = "int"', 'type = "integer"'), "knobs.depth.type"),
        (lambda s: s.replace("timeout = 30", "timeout = -1"), "timeout"),
        (lambda s: s.replace('editable = ["train.py"]', 'editable = ["missing.py"]'), "editable"),
        (lambda s: s.replace('editable = ["train.py"]', 'editable = ["../x.py"]'), "editable"),
        (lambda s: "surprise = 1\n" + s, "surprise"),
    ],
)
def test_malformed_file_fails_with_one_line_naming_file_and_field(tmp_path: Path, edit: object, field: str) -> None:
    _write(tmp_path, edit(GOOD))  # type: ignore[operator]
    with pytest.raises(TaskError) as info:
        load_task(tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "task.toml") in message and field in message


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="no task file"):
        load_task(tmp_path)
    (tmp_path / "task.toml").write_text("name = [")
    with pytest.raises(TaskError, match="not valid TOML"):
        load_task(tmp_path)


def test_the_example_task_loads() -> None:
    task = load_task(Path(__file__).resolve().parents[2] / "examples" / "gpt_bpb")
    assert isinstance(task, ResearchTask) and task.metric.name == "val_bpb" and task.prepare
    assert set(task.knobs) == {"lr", "n_embd", "n_layer", "n_head", "batch_size", "block_size", "warmup_steps", "weight_decay", "dropout"}
