"""The lab on a real Ray cluster: a head and separate worker nodes (``ray start``) on 127.0.0.1.

One cluster for the module (head 1 CPU + worker 1 CPU; the node-loss test adds a second worker and
kills it). Each test runs ``autosci run --executor ray`` as a user would, on the tiny quadratic task.
Which node runs what is forced by capacity, not timing: every node has one CPU, every experiment
asks for one, and the lab submits its baseline seeds together, so they cannot share a node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autosci_graph.runner import load_state
from autosci_graph.tools.ray_node import NODE_VAR
from autosci_graph.tools.env import RUN_MARKER
from tests.support.cli import finished_results, kill_mid_run
from tests.support.servers import RayCluster, descendants

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASK = str(ROOT / "tests" / "integration" / "tasks" / "quadratic")


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    import ray

    c = RayCluster(head_cpus=1)
    try:
        c.add_worker(cpus=1)
        yield c
    finally:
        if ray.is_initialized():  # the server test made this process a driver of the cluster
            ray.shutdown()
        c.stop()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autosci_graph.cli", *args]


def _lab_args(cluster: RayCluster, run_dir: Path, budget: int, sleep: float, slots: int) -> list[str]:
    return ["run", TASK, "--executor", "ray", "--ray-address", cluster.address, "--teams", "2", "--slots", str(slots),
            "--max-experiments", str(budget), "--stop-after-no-keep", "0", "--fixed", f"sleep={sleep}", "--no-memory",
            "--run-dir", str(run_dir)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def _log(run_dir: Path) -> list[dict[str, Any]]:
    return list(load_state(run_dir)[1]["log"])


def _check_budget(run_dir: Path, budget: int) -> list[dict[str, Any]]:
    """The run spent exactly its budget: one result per id, none lost, every one on disk; returns
    the results as written (the notebook keeps them without provenance)."""
    _, state = load_state(run_dir)
    ids = [e["result"]["experiment_id"] for e in state["log"]]
    assert len(state["submitted"]) == budget
    assert len(ids) == budget and len(set(ids)) == budget, "an experiment was lost or counted twice"
    results = []
    for eid in ids:
        path = run_dir / "experiments" / eid / "result.json"
        assert path.is_file(), f"{eid} has no result on disk"
        results.append(json.loads(path.read_text()))
        assert results[-1]["status"] == "ok", results[-1]
    return results


def _marked(run_id: str) -> list[tuple[int, dict[str, str]]]:
    """Live processes of this run's experiments, with their AUTOSCI_ variables."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/environ").read_bytes()
            state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        env = dict(item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if item.startswith(b"AUTOSCI_"))
        if RUN_MARKER in env and env[RUN_MARKER].startswith(run_id) and state not in ("Z", "X"):
            found.append((int(entry.name), env))
    return found


def test_lab_runs_across_head_and_worker_with_provenance_naming_the_node(cluster: RayCluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = subprocess.run(_cli(*_lab_args(cluster, run_dir, budget=6, sleep=0.5, slots=2)), cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    log = _check_budget(run_dir, 6)
    nodes = {r["provenance"]["node"] for r in log}
    # Two single-CPU nodes, the baseline's seeds submitted at once: both nodes ran experiments.
    assert len(nodes) == 2 and all("(ray node " in n for n in nodes), nodes
    for r in log:
        assert Path(r["log_path"]).is_file() and "loss:" in Path(r["log_path"]).read_text()  # the log came back
        assert r["metric"] is not None and r["provenance"]["env_fingerprint"]["device"] == "cpu"


def test_a_worker_node_dies_mid_experiment_and_the_run_loses_nothing(cluster: RayCluster, tmp_path: Path) -> None:
    doomed = cluster.add_worker(cpus=1)  # three single-CPU nodes; three baseline seeds land one per node
    run_dir = tmp_path / "run"
    budget = 6
    proc = subprocess.Popen(_cli(*_lab_args(cluster, run_dir, budget=budget, sleep=3.0, slots=3)), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        victim: tuple[int, dict[str, str]] | None = None
        deadline = time.time() + 120
        while victim is None and time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            on_doomed = set(descendants(doomed.pid))
            victim = next(((pid, env) for pid, env in _marked("") if pid in on_doomed), None)
            time.sleep(0.1)
        assert victim is not None, "no experiment started on the worker node"
        killed_node = victim[1][NODE_VAR]
        killed_eid = victim[1][RUN_MARKER].split("@")[0]
        cluster.kill_worker(doomed)  # the machine is gone: raylet, Ray workers and the experiment
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = _check_budget(run_dir, budget)
    rerun = next(r for r in log if r["experiment_id"] == killed_eid)
    assert killed_node not in rerun["provenance"]["node"]  # it ran again, elsewhere, and counts once
    assert all(killed_node not in r["provenance"]["node"] for r in log)  # nothing came back from the dead node


def test_lab_sigkilled_during_ray_experiments_resumes_without_duplicates(cluster: RayCluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    budget = 8
    proc = subprocess.Popen(_cli(*_lab_args(cluster, run_dir, budget=budget, sleep=1.5, slots=2)), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def on_a_node() -> None:
        assert _marked(load_state(run_dir)[0].run_id), "an in-flight experiment should be running on a node"

    finished = kill_mid_run(proc, run_dir, marker="request.json", timeout=180, before_kill=on_a_node)
    run_id = load_state(run_dir)[0].run_id

    resumed = subprocess.run(_cli("run", "--resume", str(run_dir)), cwd=ROOT, env=_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _check_budget(run_dir, budget)
    after = finished_results(run_dir)
    for eid, mtime in finished.items():
        assert after.get(eid) == mtime, f"{eid} finished before the crash but ran again"
    # Ray stopped the dead lab's tasks and their runs died with their workers: nothing of the run is left.
    assert not _marked(run_id), "a process of the killed lab's experiments is still alive"


def test_the_server_json_input_takes_the_ray_executor(cluster: RayCluster, tmp_path: Path) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    from autosci_graph.server import build_server_graph

    graph = build_server_graph().compile(checkpointer=InMemorySaver())
    out = graph.invoke({"task_dir": TASK, "executor": "ray", "ray_address": cluster.address, "teams": 1,
                        "max_experiments": 3, "memory": False, "fixed": {"sleep": 0.0}, "run_dir": str(tmp_path / "run")},
                       {"configurable": {"thread_id": "server-ray"}})
    assert out["experiments"] == 3
    results = [json.loads(p.read_text()) for p in (tmp_path / "run" / "experiments").glob("*/result.json")]
    assert len(results) == 3 and all("(ray node " in r["provenance"]["node"] for r in results)
