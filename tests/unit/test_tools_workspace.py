"""Workspaces and diffs: a copy of the task folder, edits only of editable files."""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest

from autosci_graph.task import FinalEval, Metric, ResearchTask
from autosci_graph.tools.diffs import DiffError, apply_patch, parse_diff
from autosci_graph.tools.workspace import apply_diff, check_diff, make_workspace

TRAIN = "lr = 0.001\nsteps = 10\n\n\ndef main():\n    print(lr)\n"


def _task(root: Path, **extra: object) -> ResearchTask:
    root.mkdir(exist_ok=True)
    (root / "train.py").write_text(TRAIN)
    (root / "helper.py").write_text("X = 1\n")
    spec: dict[str, object] = {"editable": ("train.py",), **extra}
    return ResearchTask(name="t", root=root, command=("{python}", "train.py"), metric=Metric(name="m"), **spec)  # type: ignore[arg-type]


def _diff(old: str, new: str, path: str = "train.py") -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}"))


def test_workspace_copies_the_task_minus_excludes_and_caches(tmp_path: Path) -> None:
    task = _task(tmp_path / "task", exclude=("big_data",), final_eval=FinalEval(command=("x",), files=("secret_test.bin",)))
    root = task.root
    (root / "big_data").mkdir()
    (root / "big_data" / "x.bin").write_bytes(b"0" * 10)
    (root / "secret_test.bin").write_bytes(b"held out")
    (root / "__pycache__").mkdir()
    (root / ".git").mkdir()
    (root / "sub").mkdir()
    (root / "sub" / "keep.txt").write_text("k")
    ws = make_workspace(task, tmp_path / "ws")
    assert sorted(p.relative_to(ws).as_posix() for p in ws.rglob("*")) == ["helper.py", "sub", "sub/keep.txt", "train.py"]


def test_apply_diff_edits_only_the_workspace(tmp_path: Path) -> None:
    task = _task(tmp_path / "task")
    ws = make_workspace(task, tmp_path / "ws")
    new = TRAIN.replace("lr = 0.001", "lr = 0.003")
    assert apply_diff(ws, _diff(TRAIN, new), task.editable) == ["train.py"]
    assert (ws / "train.py").read_text() == new
    assert (task.root / "train.py").read_text() == TRAIN


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("helper.py", "not an editable file"),
        ("../task/train.py", "escapes the workspace"),
        ("sub/../../x.py", "escapes the workspace"),
        ("/etc/passwd", "absolute"),
    ],
)
def test_paths_outside_the_editable_set_are_refused(path: str, message: str) -> None:
    diff = f"--- {path}\n+++ {path}\n@@ -1 +1 @@\n-X = 1\n+X = 2\n"
    with pytest.raises(DiffError, match=message):
        check_diff(diff, ["train.py"])


@pytest.mark.parametrize(
    "header",
    ["new file mode 100644", "deleted file mode 100644", "rename from train.py", "old mode 100644", "new mode 120000", "GIT binary patch"],
)
def test_git_extended_headers_that_create_rename_or_relink_are_refused(header: str) -> None:
    diff = f"diff --git a/train.py b/train.py\n{header}\n--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-lr = 0.001\n+lr = 0.1\n"
    with pytest.raises(DiffError, match="only edits of existing files"):
        check_diff(diff, ["train.py"])


def test_file_creation_via_dev_null_is_refused() -> None:
    with pytest.raises(DiffError, match="creating or deleting"):
        check_diff("--- /dev/null\n+++ b/train.py\n@@ -0,0 +1 @@\n+x\n", ["train.py"])


def test_symlink_on_the_way_is_refused(tmp_path: Path) -> None:
    task = _task(tmp_path / "task", editable=("sub/train.py",))
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "train.py").write_text(TRAIN)
    (task.root / "sub").symlink_to(real)
    ws = make_workspace(task, tmp_path / "ws")
    with pytest.raises(DiffError, match="symbolic link"):
        apply_diff(ws, _diff(TRAIN, "x = 1\n", "sub/train.py"), ["sub/train.py"])
    assert (real / "train.py").read_text() == TRAIN


def test_a_hunk_that_does_not_match_writes_nothing(tmp_path: Path) -> None:
    task = _task(tmp_path / "task", editable=("train.py", "helper.py"))
    ws = make_workspace(task, tmp_path / "ws")
    good = _diff("X = 1\n", "X = 2\n", "helper.py")
    bad = _diff("something else\n", "y\n")
    with pytest.raises(DiffError, match="does not apply"):
        apply_diff(ws, good + bad, task.editable)
    assert (ws / "helper.py").read_text() == "X = 1\n"  # all or nothing


@pytest.mark.parametrize("text", ["", "hello", "--- a/x\n+++ b/x\n", "--- a/train.py\n+++ b/train.py\n@@ -1,5 +1,5 @@\n-lr\n"])
def test_malformed_diffs_are_errors(text: str) -> None:
    with pytest.raises(DiffError):
        parse_diff(text)


def test_offsets_and_no_newline_at_end(tmp_path: Path) -> None:
    old = "".join(f"line {i}\n" for i in range(30)) + "last"
    new = old.replace("line 20\n", "line twenty\n").replace("last", "final")
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text(old)
    b.write_text(new)
    diff = subprocess.run(["diff", "-u", str(a), str(b)], capture_output=True, text=True).stdout
    (patch,) = parse_diff(diff)
    assert apply_patch(old, patch) == new
    assert apply_patch("extra\nlines\n" + old, patch) == "extra\nlines\n" + new  # hunks found at an offset
