"""Checkpoints in a real PostgreSQL and the memory on a real ``chroma run`` server.

* PostgreSQL (Debian's ``postgresql``), started here as the ``postgres`` user on a free loopback
  port: a lab checkpointing there is SIGKILLed, its run directory moved away, and the run resumed
  from another directory with nothing but the URL. Bad URLs fail in one line, writing nothing.
* Two labs at once write one ``chroma run`` server; every experiment of both is recalled afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autosci_graph.memory.chroma import ChromaMemory
from autosci_graph.memory.record import record_id
from autosci_graph.runner import RunSpec, load_state
from tests.support.cli import finished_results, kill_mid_run
from tests.support.servers import ChromaServer, Postgres

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASK = str(ROOT / "tests" / "integration" / "tasks" / "quadratic")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autosci_graph.cli", *args]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    try:
        yield pg
    finally:
        pg.stop()


def test_lab_resumes_from_postgres_in_another_run_directory_with_only_the_url(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.url()
    first, second = tmp_path / "machine-a" / "run", tmp_path / "machine-b" / "run"
    budget = 8
    args = ["run", TASK, "--checkpoint", url, "--teams", "2", "--slots", "2", "--max-experiments", str(budget),
            "--stop-after-no-keep", "0", "--fixed", "sleep=1.0", "--no-memory", "--run-dir", str(first)]
    proc = subprocess.Popen(_cli(*args), cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_mid_run(proc, first, timeout=180)
    spec = RunSpec.load(first)
    assert spec.checkpoint == url and not (first / "checkpoints.sqlite").exists()  # nothing checkpointed locally
    # The first machine is gone: the second knows only the URL. Its lab's checkpoint names what had finished.
    first.rename(tmp_path / "machine-a" / "gone")
    resumed = subprocess.run(_cli("run", "--resume", url, "--run-dir", str(second)), cwd=ROOT, env=os.environ.copy(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert RunSpec.load(second).run_id == spec.run_id
    _, state = load_state(second)
    ids = [e["result"]["experiment_id"] for e in state["log"]]
    assert len(state["submitted"]) == budget
    assert len(ids) == budget and len(set(ids)) == budget, "an experiment was lost or counted twice"
    before = set(finished_results(tmp_path / "machine-a" / "gone"))
    ran_here = set(finished_results(second))
    assert before and before <= set(ids)  # finished before the crash: kept in the checkpoint ...
    assert not before & ran_here  # ... and not run again on the second machine
    assert ran_here == set(ids) - before  # every other experiment ran (or re-ran, if in flight) here


@pytest.mark.parametrize(("url", "says"), [
    ("mysql://db/x", "expected a URL like postgresql://"),
    ("postgresql://u:secret@127.0.0.1/db", "carries a password"),
    ("postgresql://postgres@127.0.0.1:{port}/nosuchdb", "createdb"),
    ("postgresql://postgres@127.0.0.1:1/x", "Start PostgreSQL there"),
])
def test_a_bad_checkpoint_url_is_one_line_and_writes_nothing(postgres: Postgres, tmp_path: Path, url: str, says: str) -> None:
    run_dir = tmp_path / "run"
    out = subprocess.run(_cli("run", TASK, "--checkpoint", url.format(port=postgres.port), "--no-memory", "--run-dir",
                              str(run_dir)), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "[CHECKPOINT]" in lines[0] and says in lines[0], out.stderr
    assert "secret" not in out.stderr
    assert not run_dir.exists()


def test_two_labs_at_once_share_one_chroma_server_and_lose_nothing(tmp_path: Path) -> None:
    server = ChromaServer(tmp_path / "chroma-data")
    try:
        runs = [tmp_path / f"lab{i}" for i in range(2)]
        labs = [subprocess.Popen(_cli("run", TASK, "--memory-host", "127.0.0.1", "--memory-port", str(server.port),
                                      "--teams", "2", "--slots", "1", "--max-experiments", "6", "--stop-after-no-keep", "0",
                                      "--fixed", "sleep=0.2", "--seed", str(i), "--run-dir", str(run)),
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for i, run in enumerate(runs)]
        for lab in labs:
            _, err = lab.communicate(timeout=300)
            assert lab.returncode == 0, err[-3000:]
        expected = []
        for run in runs:
            spec, state = load_state(run)
            assert (spec.memory_host, spec.memory_port) == ("127.0.0.1", server.port)
            expected += [record_id("quadratic", spec.run_id, e["result"]["experiment_id"]) for e in state["log"]]
        assert len(expected) == 12
        with ChromaMemory(host="127.0.0.1", port=server.port, task="quadratic") as mem:
            found = mem.get(expected)
            assert sorted(r.id for r in found) == sorted(expected)  # nothing lost, nothing clobbered
            for run in runs:  # and each lab's records are searchable, scoped to that lab
                run_id = json.loads((run / "run.json").read_text())["run_id"]
                hits = mem.recall("learning rate and width of the model", k=20, where={"run_id": run_id})
                assert {h.record.run_id for h in hits} == {run_id} and len(hits) == 6
    finally:
        server.stop()


@pytest.mark.parametrize(("flags", "says"), [
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
    (["--executor", "ray", "--ray-address", "not-an-address"], "expected HOST:PORT"),
    (["--ray-address", "127.0.0.1:1"], "--ray-address needs --executor ray"),
    (["--memory-host", "127.0.0.1", "--memory-port", "1"], "no Chroma server answers at 127.0.0.1:1"),
    (["--memory-host", "127.0.0.1", "--memory-path", "somewhere"], "not both"),
    (["--executor", "ray", "--cpus-per-slot", "0"], "--cpus-per-slot must be at least 1"),
])
def test_an_unreachable_cluster_service_is_one_line_and_writes_nothing(tmp_path: Path, flags: list[str], says: str) -> None:
    run_dir = tmp_path / "run"
    out = subprocess.run(_cli("run", TASK, *flags, "--run-dir", str(run_dir)), cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autosci: error:") and says in lines[0], out.stderr
    assert not run_dir.exists()
