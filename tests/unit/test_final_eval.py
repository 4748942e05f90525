"""The held-out final evaluation: it runs the champion on data experiments never see, and it
refuses to run when an evaluation file or a data file was changed.

A tiny task, no torch: ``train.py`` "trains" by reading a number from the training data and
adding the ``bias`` knob; ``final_eval.py`` runs train.py (passing every argument on), then
scores the prediction against the held-out label in ``AUTOSCI_FINAL_DIR``.
"""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path

import pytest

from autosci_graph.errors import AutosciError, ErrorCode
from autosci_graph.final_eval import RECORD, FinalEvalTamperedError, run_final_eval, verify_final_eval
from autosci_graph.state import Change
from autosci_graph.task import ResearchTask, load_task
from autosci_graph.tools.env import build_run_env
from autosci_graph.tools.slots import Slot
from autosci_graph.tools.workspace import make_workspace

TASK_TOML = """
name = "tiny_final"
command = ["{python}", "train.py", "--seed={seed}"]
prepare = ["{python}", "prepare.py"]
editable = ["train.py"]
timeout = 30

[metric]
name = "val_error"
direction = "minimize"

[final_eval]
command = ["{python}", "final_eval.py", "--seed={seed}"]
files = ["final_eval.py"]
metric = "test_error"

[knobs.bias]
type = "float"
low = -5.0
high = 5.0
default = 0.0
"""

PREPARE = """
import hashlib, json, os, pathlib
data, final = pathlib.Path(os.environ["AUTOSCI_DATA_DIR"]), pathlib.Path(os.environ["AUTOSCI_FINAL_DIR"])
data.mkdir(parents=True, exist_ok=True); final.mkdir(parents=True, exist_ok=True)
(data / "train.txt").write_text("1.0")
(final / "test.txt").write_text("3.0")
h = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
(final / "manifest.json").write_text(json.dumps({"final": {"test.txt": h(final / "test.txt")}, "data": {"train.txt": h(data / "train.txt")}}))
"""

TRAIN = """
import os, pathlib, sys
bias = 0.0
offset = 0.0
for arg in sys.argv[1:]:
    key, value = arg[2:].split("=", 1)
    if key in ("bias", "offset"):
        globals()[key] = float(value)
    if key == "predict_out":
        predict_out = value
assert "AUTOSCI_FINAL_DIR" not in os.environ, "a training run must not see the held-out data"
prediction = float((pathlib.Path(os.environ["AUTOSCI_DATA_DIR"]) / "train.txt").read_text()) + bias + offset
if "predict_out" in globals():
    pathlib.Path(predict_out).write_text(str(prediction))
print("---")
print(f"val_error: {abs(prediction - 2.0)}")
"""

FINAL_EVAL = """
import os, pathlib, subprocess, sys
label = float((pathlib.Path(os.environ["AUTOSCI_FINAL_DIR"]) / "test.txt").read_text())
env = {k: v for k, v in os.environ.items() if k != "AUTOSCI_FINAL_DIR"}
proc = subprocess.run([sys.executable, "train.py", *sys.argv[1:], "--predict_out=pred.txt"], env=env)
if proc.returncode:
    sys.exit(proc.returncode)
print("---")
print(f"test_error: {abs(float(pathlib.Path('pred.txt').read_text()) - label)}")
"""


@pytest.fixture
def task(tmp_path: Path) -> ResearchTask:
    root = tmp_path / "task"
    root.mkdir()
    for name, text in {"task.toml": TASK_TOML, "prepare.py": PREPARE, "train.py": TRAIN, "final_eval.py": FINAL_EVAL}.items():
        (root / name).write_text(textwrap.dedent(text))
    return load_task(root)


def dirs(tmp_path: Path) -> dict[str, Path]:
    return {"data_dir": tmp_path / "cache" / "data", "final_dir": tmp_path / "cache" / "final"}


def test_the_champion_is_retrained_and_scored_on_held_out_data(task: ResearchTask, tmp_path: Path) -> None:
    result = run_final_eval(task, Change(knobs={"bias": 0.5}), work_dir=tmp_path / "work", **dirs(tmp_path))
    assert result.ok, result.error
    assert result.metric_name == "test_error"
    assert result.metric == pytest.approx(1.5)  # |(1.0 + 0.5) - 3.0|
    assert result.metrics["test_error"] == pytest.approx(1.5)
    assert "--bias=0.5" in result.command and "--seed=0" in result.command
    assert {"eval:final_eval.py", "final:test.txt", "data:train.txt"} <= set(result.verified)
    assert json.loads((Path(result.log_path).parent / "result.json").read_text())["metric"] == pytest.approx(1.5)


def test_the_champion_diff_is_applied_in_the_evaluation_copy_only(task: ResearchTask, tmp_path: Path) -> None:
    diff = "--- a/train.py\n+++ b/train.py\n@@ -2,3 +2,3 @@\n bias = 0.0\n-offset = 0.0\n+offset = 2.0\n for arg in sys.argv[1:]:\n"
    result = run_final_eval(task, Change(diff=diff), work_dir=tmp_path / "work", **dirs(tmp_path))
    assert result.ok, result.error
    assert result.metric == pytest.approx(0.0)  # 1.0 + 2.0 == the held-out label
    assert "offset = 0.0" in (task.root / "train.py").read_text()


def test_a_tampered_evaluation_file_is_refused(task: ResearchTask, tmp_path: Path) -> None:
    run_final_eval(task, Change(), work_dir=tmp_path / "work", **dirs(tmp_path))  # records the hashes
    script = task.root / "final_eval.py"
    script.write_text(script.read_text().replace("abs(", "0 * abs("))  # "every champion is perfect"
    with pytest.raises(FinalEvalTamperedError) as err:
        run_final_eval(task, Change(), work_dir=tmp_path / "work", **dirs(tmp_path))
    assert err.value.code is ErrorCode.FINAL_EVAL_TAMPERED
    assert "final_eval.py" in str(err.value) and "refusing" in str(err.value)
    assert len(list((tmp_path / "work" / "final_eval").iterdir())) == 1  # the second never started


@pytest.mark.parametrize("which", ["final/test.txt", "data/train.txt"])
def test_a_tampered_data_file_is_refused(task: ResearchTask, tmp_path: Path, which: str) -> None:
    d = dirs(tmp_path)
    run_final_eval(task, Change(), work_dir=tmp_path / "work", **d)
    (tmp_path / "cache" / which).write_text("2.0")
    with pytest.raises(FinalEvalTamperedError, match=Path(which).name):
        run_final_eval(task, Change(), work_dir=tmp_path / "work", **d)


def test_a_missing_manifest_is_refused(task: ResearchTask, tmp_path: Path) -> None:
    d = dirs(tmp_path)
    run_final_eval(task, Change(), work_dir=tmp_path / "work", **d)
    (d["final_dir"] / "manifest.json").unlink()
    with pytest.raises(FinalEvalTamperedError, match="manifest.json"):
        verify_final_eval(task, **d)


def test_a_diff_may_not_touch_the_evaluation(task: ResearchTask, tmp_path: Path) -> None:
    diff = "--- a/final_eval.py\n+++ b/final_eval.py\n@@ -1,2 +1,2 @@\n import os, pathlib, subprocess, sys\n-label = float((pathlib.Path(os.environ[\"AUTOSCI_FINAL_DIR\"]) / \"test.txt\").read_text())\n+label = 1.0\n"
    with pytest.raises(AutosciError) as err:
        run_final_eval(task, Change(diff=diff), work_dir=tmp_path / "work", **dirs(tmp_path))
    assert err.value.code is ErrorCode.INVALID_CHANGE and "final_eval.py" in str(err.value)


def test_a_crashing_champion_is_a_result_not_an_exception(task: ResearchTask, tmp_path: Path) -> None:
    diff = "--- a/train.py\n+++ b/train.py\n@@ -2,3 +2,3 @@\n bias = 0.0\n-offset = 0.0\n+offset = 1 / 0\n for arg in sys.argv[1:]:\n"
    result = run_final_eval(task, Change(diff=diff), work_dir=tmp_path / "work", **dirs(tmp_path))
    assert result.status == "crash" and result.metric is None
    assert "ZeroDivisionError" in (result.error or "")


def test_experiments_see_neither_the_evaluation_nor_the_held_out_data(task: ResearchTask, tmp_path: Path) -> None:
    assert set(task.workspace_excludes()) >= {"final_eval.py", "task.toml"}
    ws = make_workspace(task, tmp_path / "ws")
    assert (ws / "train.py").is_file() and not (ws / "final_eval.py").exists()
    d = dirs(tmp_path)
    run_final_eval(task, Change(), work_dir=tmp_path / "work", **d)
    held_out = hashlib.sha256((d["final_dir"] / "test.txt").read_bytes()).hexdigest()
    data_files = [p for p in d["data_dir"].rglob("*") if p.is_file()]
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() != held_out for p in data_files)
    env = build_run_env(task, Slot(index=0, threads=1), run_id="x", data_dir=d["data_dir"], base={**os.environ, "AUTOSCI_FINAL_DIR": str(d["final_dir"])})
    assert "AUTOSCI_FINAL_DIR" not in env


def test_the_hash_record_lives_with_the_held_out_data(task: ResearchTask, tmp_path: Path) -> None:
    d = dirs(tmp_path)
    run_final_eval(task, Change(), work_dir=tmp_path / "work", **d)
    record = json.loads((d["final_dir"] / RECORD).read_text())
    assert record == {"final_eval.py": hashlib.sha256((task.root / "final_eval.py").read_bytes()).hexdigest()}
