"""The GPT bits-per-byte example through the real CLI, as a user runs it after set-up.

Budgets are cut to seconds with ``--fixed`` (the task's fixed arguments), and the evaluation
to a few KiB, so the whole module runs in well under a minute on two cores.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from autosci_graph.task import load_task
from tests.support.cli import autosci

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "examples" / "gpt_bpb"
#: Exactly repeatable on CPU: a step budget, no wall clock.
STEPS = ["--fixed", "time_budget=0", "--fixed", "max_steps=15", "--fixed", "eval_bytes=4096"]


def test_run_one_prints_a_finite_val_bpb(tmp_path: Path) -> None:
    code, result, err = autosci("run-one", str(TASK), "--fixed", "time_budget=2", "--fixed", "eval_bytes=4096", work=tmp_path)
    assert code == 0, err
    assert result["status"] == "ok"
    assert math.isfinite(result["metric"]) and 1.0 < result["metric"] < 8.5
    assert result["metrics"]["steps"] > 0
    assert any("train_loss" in p for p in result["curve"])  # the learning curve from JSON lines
    prov = result["provenance"]
    assert "--time_budget=2" in prov["command"] and prov["env_fingerprint"]["torch"].startswith("2.")
    assert prov["data_hash"].startswith("sha256:")
    assert (tmp_path / "runs" / "run-one" / "experiments" / result["experiment_id"] / "result.json").is_file()


def test_same_seed_and_steps_reproduce_and_a_higher_lr_differs(tmp_path: Path) -> None:
    code, a, err = autosci("run-one", str(TASK), *STEPS, "--seed", "3", work=tmp_path)
    assert code == 0, err
    code, b, err = autosci("run-one", str(TASK), *STEPS, "--seed", "3", work=tmp_path)
    assert code == 0, err
    assert a["metric"] == b["metric"]  # bit-for-bit on CPU
    code, c, err = autosci("run-one", str(TASK), *STEPS, "--seed", "3", "--set", "lr=0.01", work=tmp_path)
    assert code == 0, err
    assert c["metric"] != a["metric"]

    result_json = tmp_path / "runs" / "run-one" / "experiments" / c["experiment_id"] / "result.json"
    code, report, err = autosci("reproduce", str(result_json), work=tmp_path)
    assert code == 0, err
    assert report["identical_metric"] is True and report["new"]["metric"] == c["metric"]
    assert report["new"]["change"]["knobs"] == {"lr": 0.01}


def test_user_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    code, _, err = autosci("run-one", str(TASK), "--set", "lr=5", work=tmp_path)
    assert code == 2 and "lr" in err and "Traceback" not in err
    code, _, err = autosci("run-one", str(tmp_path), work=tmp_path)
    assert code == 2 and "task.toml" in err


def test_a_patch_of_a_non_editable_file_is_a_bad_change(tmp_path: Path) -> None:
    patch = tmp_path / "p.diff"
    patch.write_text("--- a/prepare.py\n+++ b/prepare.py\n@@ -1 +1 @@\n-x\n+y\n")
    code, result, err = autosci("run-one", str(TASK), "--patch", str(patch), work=tmp_path)
    assert code == 1, err
    assert result["status"] == "bad_change" and "not an editable file" in result["error"]


def test_task_defaults_match_the_script_constants() -> None:
    """task.toml declares the knobs' defaults; train.py's constants are what a run uses."""
    task = load_task(TASK)
    source = (TASK / "train.py").read_text()
    for name, default in task.default_config().items():
        m = re.search(rf"^{name} = ([^#\n]+)", source, re.M)
        assert m, f"train.py has no constant {name}"
        assert float(m.group(1)) == float(default), name
    for name in task.fixed:
        assert re.search(rf"^{name} = ", source, re.M), f"fixed argument {name} is not a train.py constant"


def test_prepare_splits_by_play_and_holds_out_a_test_set() -> None:
    from autosci_graph.tools.prepare import ensure_prepared

    task = load_task(TASK)
    data = ensure_prepared(task)
    meta = json.loads((data / "meta.json").read_text())
    final = json.loads((task.default_final_dir() / "meta.json").read_text())
    assert not set(meta["train_plays"]) & set(meta["val_plays"])
    assert not set(final["test_plays"]) & (set(meta["train_plays"]) | set(meta["val_plays"]))
    assert (data / "train.bin").stat().st_size > 3_000_000 and (data / "val.bin").stat().st_size > 100_000
    assert not (data / "test.bin").exists()  # held-out data never sits where runs can read it


def test_reproduce_rebuilds_the_exact_files_of_a_code_change(tmp_path: Path) -> None:
    idea = (TASK / "ideas" / "relu2.diff").read_text()
    patch = tmp_path / "relu2.diff"
    patch.write_text(idea)
    code, result, err = autosci("run-one", str(TASK), *STEPS, "--patch", str(patch), work=tmp_path)
    assert code == 0, err
    result_json = tmp_path / "runs" / "run-one" / "experiments" / result["experiment_id"] / "result.json"
    code, report, err = autosci("reproduce", str(result_json), "--files", str(tmp_path / "rebuilt"), work=tmp_path)
    assert code == 0, err
    rebuilt = (tmp_path / "rebuilt" / "train.py").read_text()
    workspace = Path(result["workspace"]) / "train.py"
    assert rebuilt == workspace.read_text() and rebuilt != (TASK / "train.py").read_text()
    assert len(report["commit"]) == 12 and report["files"] == ["train.py"]
    # A non-empty target is refused, nothing overwritten.
    code, _, err = autosci("reproduce", str(result_json), "--files", str(tmp_path / "rebuilt"), work=tmp_path)
    assert code == 2 and "not empty" in err
