"""Data preparation: once, cached, safe against parallel callers, clear when it fails."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from autosci_graph.errors import DataUnavailableError
from autosci_graph.task import Metric, ResearchTask
from autosci_graph.tools.prepare import ensure_prepared
from autosci_graph.tools.provenance import data_hash

PREPARE = """
import os, time, pathlib
data = pathlib.Path(os.environ["AUTOSCI_DATA_DIR"])
final = pathlib.Path(os.environ["AUTOSCI_FINAL_DIR"])
with open(pathlib.Path(__file__).parent / "calls.txt", "a") as fh:
    fh.write("x")
time.sleep(0.3)  # long enough for a second caller to arrive while this one prepares
(data / "train.bin").write_bytes(b"abc")
(final / "test.bin").write_bytes(b"held out")
print("prepared into", data)
"""


def _task(root: Path, script: str = PREPARE) -> ResearchTask:
    root.mkdir()
    (root / "prepare.py").write_text(script)
    return ResearchTask(name="p", root=root, command=("{python}", "train.py"), metric=Metric(name="m"), prepare=("{python}", "prepare.py"))


def test_prepared_once_even_with_parallel_callers(tmp_path: Path) -> None:
    task = _task(tmp_path / "task")
    data, final = tmp_path / "data", tmp_path / "final"
    threads = [threading.Thread(target=ensure_prepared, args=(task, data, final)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ensure_prepared(task, data, final) == data.resolve()
    assert (task.root / "calls.txt").read_text() == "x"
    assert (data / "train.bin").read_bytes() == b"abc" and (final / "test.bin").read_bytes() == b"held out"
    h = data_hash(data)
    assert h is not None and h.startswith("sha256:")


def test_changed_prepare_script_prepares_again(tmp_path: Path) -> None:
    task = _task(tmp_path / "task")
    ensure_prepared(task, tmp_path / "data", tmp_path / "final")
    (task.root / "prepare.py").write_text(PREPARE + "\n# new version\n")
    ensure_prepared(task, tmp_path / "data", tmp_path / "final")
    assert (task.root / "calls.txt").read_text() == "xx"


def test_failure_raises_with_the_output_tail(tmp_path: Path) -> None:
    task = _task(tmp_path / "task", "import sys\nprint('fetching corpus')\nsys.exit('cannot reach the package index')\n")
    with pytest.raises(DataUnavailableError, match="cannot reach the package index") as info:
        ensure_prepared(task, tmp_path / "data", tmp_path / "final")
    assert "exited with status 1" in str(info.value) and "DATA_UNAVAILABLE" in str(info.value)
    with pytest.raises(DataUnavailableError):  # not cached as prepared
        ensure_prepared(task, tmp_path / "data", tmp_path / "final")


def test_task_without_prepare_gets_an_empty_folder(tmp_path: Path) -> None:
    task = ResearchTask(name="q", root=tmp_path, command=("x",), metric=Metric(name="m"))
    assert ensure_prepared(task, tmp_path / "d").is_dir()
