"""Shipped ideas: every example's ideas load, apply to the original file, compile and compose;
a malformed idea is a one-line TaskError that names the file, the problem and the fix."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pydantic import ValidationError

from autosci_graph.errors import ErrorCode, TaskError
from autosci_graph.ideas import Idea, load_ideas
from autosci_graph.task import ResearchTask, load_task
from autosci_graph.tools.diffs import DiffError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TASKS = sorted(p.parent for p in EXAMPLES.glob("*/ideas"))


def _ideas(root: Path) -> tuple[ResearchTask, list[Idea]]:
    task = load_task(root)
    return task, load_ideas(task.root, task.editable)


def _originals(task: ResearchTask) -> dict[str, str]:
    return {rel: (task.root / rel).read_text(encoding="utf-8") for rel in task.editable}


SHIPPED = [(root, idea.name) for root in TASKS for idea in _ideas(root)[1]]


def test_the_examples_ship_ideas() -> None:
    shipped = {root.name: [idea.name for idea in _ideas(root)[1]] for root in TASKS}
    assert len(shipped.get("gpt_bpb", [])) >= 4
    assert shipped.get("protein") and shipped.get("solubility")


@pytest.mark.parametrize(("root", "name"), SHIPPED, ids=[f"{r.name}-{n}" for r, n in SHIPPED])
def test_a_shipped_idea_applies_compiles_and_keeps_the_script_protocol(root: Path, name: str) -> None:
    task, ideas = _ideas(root)
    idea = next(i for i in ideas if i.name == name)
    originals = _originals(task)
    patched = idea.apply_to(originals, task.editable)
    assert idea.files and set(idea.files) <= set(task.editable)
    for rel in idea.files:
        text = patched[rel]
        assert text != originals[rel]
        compile(text, rel, "exec")
        # overrides still parsed, the summary block still printed with the task's metric
        assert "sys.argv[1:]" in text and 'print("---")' in text and f"{task.metric.name}:" in text
    assert idea.description and not idea.diff.startswith("#")


@pytest.mark.parametrize("root", TASKS, ids=[r.name for r in TASKS])
def test_ideas_on_different_axes_compose_in_either_order(root: Path) -> None:
    task, ideas = _ideas(root)
    originals = _originals(task)
    pairs = [(a, b) for a, b in itertools.combinations(ideas, 2) if a.axis != b.axis]
    assert pairs or len({i.axis for i in ideas}) == 1
    for a, b in pairs:
        ab = b.apply_to(a.apply_to(originals, task.editable), task.editable)
        ba = a.apply_to(b.apply_to(originals, task.editable), task.editable)
        assert ab == ba, f"{a.name} and {b.name} give different files depending on the order"
        for rel, text in ab.items():
            compile(text, rel, "exec")


# -- the format and its errors -------------------------------------------------------------------

TRAIN = "lr = 0.001\nsteps = 10\n\n\ndef main():\n    print(lr)\n"
GOOD = (
    "# description: a larger learning rate (Someone, 2020)\n"
    "# axis: lr\n"
    "# reference: a comment line, ignored\n"
    "--- a/train.py\n+++ b/train.py\n@@ -1,2 +1,2 @@\n-lr = 0.001\n+lr = 0.01\n steps = 10\n"
)
BODY = GOOD.split("--- a/train.py", 1)[1]


def _task_dir(tmp_path: Path, **ideas: str) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "other.py").write_text("X = 1\n")
    (tmp_path / "ideas").mkdir()
    for name, text in ideas.items():
        (tmp_path / "ideas" / f"{name}.diff").write_text(text)
    return tmp_path


def test_an_idea_loads_into_a_frozen_record(tmp_path: Path) -> None:
    root = _task_dir(tmp_path, larger_lr=GOOD)
    (root / "ideas" / "README.md").write_text("not an idea")
    [idea] = load_ideas(root, ["train.py"])
    assert (idea.name, idea.axis, idea.files) == ("larger_lr", "lr", ["train.py"])
    assert idea.description == "a larger learning rate (Someone, 2020)"
    assert idea.diff.startswith("--- a/train.py") and "# axis" not in idea.diff
    assert idea.apply_to({"train.py": TRAIN})["train.py"].startswith("lr = 0.01\n")
    assert Idea.model_validate(idea.to_state()) == idea
    with pytest.raises(ValidationError):
        idea.axis = "other"  # type: ignore[misc]


def test_ideas_are_sorted_by_name_and_a_task_without_them_has_none(tmp_path: Path) -> None:
    root = _task_dir(tmp_path / "t", **{"b": GOOD, "a-b": GOOD, "a": GOOD})
    assert [i.name for i in load_ideas(root, ["train.py"])] == ["a", "a-b", "b"]
    (tmp_path / "bare").mkdir()
    assert load_ideas(tmp_path / "bare", ["train.py"]) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# axis: lr\n--- a/train.py" + BODY, "no '# description:' line; fix: add one"),
        ("# description: x\n--- a/train.py" + BODY, "no '# axis:' line"),
        ("# descripton: typo\n# axis: lr\n--- a/train.py" + BODY, "no '# description:' line"),
        ("# description: x\n# axis: norm layer\n--- a/train.py" + BODY, "axis 'norm layer' is not a tag; fix: use letters"),
        ("# description: x\n# description: y\n# axis: lr\n--- a/train.py" + BODY, "'# description:' given twice"),
        ("# description: x\n# axis: lr\nset lr to 0.01 please\n", "not a diff (no '--- a/FILE' line)"),
        ("# description: x\n# axis: lr\n--- a/train.py\n+++ b/train.py\n", "has no hunks"),
        ("# description: x\n# axis: lr\n" + GOOD.split("# reference: a comment line, ignored\n")[1].replace("train.py", "other.py"),
         "not an editable file of this task"),
        ("# description: x\n# axis: lr\n--- a/train.py\n+++ b/train.py\n@@ -1,1 +1,1 @@\n-lr = 0.5\n+lr = 0.01\n",
         "does not apply to the original train.py"),
        ("# description: x\n# axis: lr\n--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,1 @@\n+X = 2\n", "creating or deleting files is not allowed"),
    ],
    ids=["no-description", "no-axis", "misspelt-key", "bad-axis", "duplicate-key", "not-a-diff", "no-hunks",
         "not-editable", "does-not-apply", "new-file"],
)
def test_a_malformed_idea_is_a_task_error_naming_file_problem_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    root = _task_dir(tmp_path, broken=text)
    with pytest.raises(TaskError) as err:
        load_ideas(root, ["train.py"])
    message = str(err.value)
    assert err.value.code is ErrorCode.INVALID_TASK
    assert str(root / "ideas" / "broken.diff") in message and expected in message and "fix" in message
    assert "\n" not in message


def test_a_bad_idea_name_is_refused(tmp_path: Path) -> None:
    root = _task_dir(tmp_path, **{"_private": GOOD})
    with pytest.raises(TaskError, match="idea name '_private'"):
        load_ideas(root, ["train.py"])


def test_apply_to_refuses_a_file_it_was_not_given(tmp_path: Path) -> None:
    [idea] = load_ideas(_task_dir(tmp_path, a=GOOD), ["train.py"])
    with pytest.raises(DiffError, match="not among the given files"):
        idea.apply_to({"other.py": "X = 1\n"}, ["train.py", "other.py"])
    with pytest.raises(DiffError, match="does not apply"):
        idea.apply_to({"train.py": "lr = 3\n"})
