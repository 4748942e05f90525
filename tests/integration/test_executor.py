"""The executor contract with real processes: slots, idempotence, resume, wait, close.

Every test runs on each executor: LocalExecutor, and RayExecutor on a real Ray head started on
127.0.0.1 for this module (stopped by PID at the end).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autosci_graph.state import Change, RunRequest
from autosci_graph.task import ResearchTask
from autosci_graph.tools.base import Executor
from autosci_graph.tools.local import LocalExecutor
from tests.support.processes import marked, wait_gone
from tests.support.servers import RayCluster

ScriptsTask = Callable[..., ResearchTask]  # the conftest fixture `scripts_task`
MakeExecutor = Callable[..., Executor]

pytestmark = pytest.mark.integration


#: The nodes' own environment: a secret of theirs, and a setting a task may ask for by name.
NODE_ENV = {"NODE_API_TOKEN": "node-secret-0042", "NODE_SETTING": "node-plain-0043"}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """One Ray head (2 CPUs, and 1 GPU declared to Ray though the machine may have none) for the
    module: starting one costs seconds, tests share it."""
    import ray

    cluster = RayCluster(head_cpus=2, head_gpus=1, env=NODE_ENV)
    try:
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.stop()


@pytest.fixture(params=["local", "ray"])
def make_executor(request: pytest.FixtureRequest) -> MakeExecutor:
    """Builds the executor under test: ``make_executor(task, work_dir, slots=..., grace_s=...)``."""
    if request.param == "local":
        return LocalExecutor
    from autosci_graph.tools.ray import RayExecutor

    cluster: RayCluster = request.getfixturevalue("ray_cluster")

    def make(task: ResearchTask, work: Path, **kwargs: Any) -> Executor:
        return RayExecutor(task, work, address=cluster.address, device="cpu", **kwargs)

    return make


def _is_ray(ex: Executor) -> bool:
    return type(ex).__name__ == "RayExecutor"


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda t: (t[0], t[1]))
    level = best = 0
    for _, delta in events:
        level += delta
        best = max(best, level)
    return best


def test_two_slots_overlap_and_never_more_than_two(tmp_path: Path, scripts_task: ScriptsTask, make_executor: MakeExecutor) -> None:
    task = scripts_task(tmp_path / "task")
    with make_executor(task, tmp_path / "work", slots=2) as ex:
        assert ex.slots == 2
        requests = [RunRequest(experiment_id=f"e{i}", change=Change(knobs={"sleep": 0.6, "x": float(i)})) for i in range(5)]
        results = ex.run_many(requests)
    assert [r.status for r in results] == ["ok"] * 5
    assert [r.metric for r in results] == [0.0, 1.0, 2.0, 3.0, 4.0]
    intervals = [(r.started_at, r.ended_at) for r in results]
    assert _max_overlap(intervals) == 2
    first, second = sorted(intervals)[:2]
    assert second[0] < first[1]  # the first two really ran at the same time
    if _is_ray(ex):  # one node: every run names it, and each got the one CPU it asked Ray for
        assert len({r.provenance.node for r in results if r.provenance}) == 1
        assert all(r.provenance and "ray node" in r.provenance.node and r.provenance.env_fingerprint["cpu_threads"] == "1"
                   for r in results)
    else:
        assert {r.provenance.slot for r in results if r.provenance} == {"cpu:0", "cpu:1"}


def test_submit_is_idempotent_and_results_survive_a_restart(tmp_path: Path, scripts_task: ScriptsTask, make_executor: MakeExecutor) -> None:
    task = scripts_task(tmp_path / "task")
    work = tmp_path / "work"
    request = RunRequest(experiment_id="once", change=Change(knobs={"x": 2.5}), seed=7)
    with make_executor(task, work, slots=2) as ex:
        ex.submit(request)
        ex.submit(request)  # queued twice must not run twice
        (first,) = ex.wait(["once"])
        ex.submit(request)
        assert ex.wait(["once"]) == [first]
    assert first.status == "ok" and first.metric == 2.5 and first.seed == 7
    assert first.provenance is not None and "--seed=7" in first.provenance.command
    mtime = (work / "experiments" / "once" / "result.json").stat().st_mtime_ns

    with make_executor(task, work, slots=1) as fresh:  # a resumed lab
        assert fresh.wait(["once"]) == [first]
        fresh.submit(request)
        assert fresh.wait(["once"], timeout=0) == [first]
    assert (work / "experiments" / "once" / "result.json").stat().st_mtime_ns == mtime  # not re-run


def test_wait_semantics(tmp_path: Path, scripts_task: ScriptsTask, make_executor: MakeExecutor) -> None:
    task = scripts_task(tmp_path / "task")
    with make_executor(task, tmp_path / "work", slots=1) as ex:
        with pytest.raises(KeyError):
            ex.wait(["never-submitted"])
        ex.submit(RunRequest(experiment_id="slow", change=Change(knobs={"sleep": 1.0})))
        ex.submit(RunRequest(experiment_id="fast"))
        t0 = time.monotonic()
        assert ex.wait(["slow", "fast"], timeout=0.1) == []
        assert time.monotonic() - t0 < 0.5
        done = ex.wait(["slow", "fast"])
        assert [r.experiment_id for r in done] == ["slow"]  # one slot: slow finishes first
        assert {r.experiment_id for r in ex.run_many([RunRequest(experiment_id="fast")])} == {"fast"}


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _helpers_started(experiment_id: str) -> bool:
    """hang.py's main process, its child and its setsid grandchild are all up (found by marker).
    Counted by the script's path among their arguments: the sandbox's own processes carry the
    marker and ``--script=hang.py`` too, and one of them is short-lived, so counting them saw
    three processes, then two (1 test in 20 failed so)."""
    return len([p for p in marked(experiment_id) if any(a.endswith(b"/hang.py") for a in _cmdline(p).split(b"\0"))]) >= 3


def test_close_kills_running_experiments_and_leaves_them_unfinished(tmp_path: Path, scripts_task: ScriptsTask, make_executor: MakeExecutor) -> None:
    task = scripts_task(tmp_path / "task", timeout=60)
    work = tmp_path / "work"
    ex = make_executor(task, work, slots=1, grace_s=0.5)
    long = _unique("long")  # processes are found by id, machine-wide: another session may run this suite too
    ex.submit(RunRequest(experiment_id=long, change=Change(knobs={"script": "hang.py"})))
    ex.submit(RunRequest(experiment_id="queued"))
    deadline = time.time() + 30
    while not _helpers_started(long) and time.time() < deadline:
        time.sleep(0.05)
    assert _helpers_started(long)  # on a Ray node too: the run, its child and its escaped grandchild
    t0 = time.monotonic()
    ex.close()  # Ray: ray.cancel, the node kills the run's tree (TERM, grace, KILL)
    assert time.monotonic() - t0 < 10
    assert not (work / "experiments" / long / "result.json").exists()  # a resumed lab re-runs it
    assert not (work / "experiments" / "queued").exists()
    assert not wait_gone(long, timeout=1.0)  # the sandbox's pids are not the host's: find them by marker
    with pytest.raises(RuntimeError):
        ex.submit(RunRequest(experiment_id="late"))


def test_cancel_returns_at_once_wakes_the_waiter_and_close_waits_for_the_kills(
        tmp_path: Path, scripts_task: ScriptsTask, make_executor: MakeExecutor) -> None:
    task = scripts_task(tmp_path / "task", timeout=60)
    work = tmp_path / "work"
    ex = make_executor(task, work, slots=1, grace_s=0.5)
    long = _unique("long")
    ex.submit(RunRequest(experiment_id=long, change=Change(knobs={"script": "hang.py"})))
    deadline = time.time() + 30
    while not _helpers_started(long) and time.time() < deadline:
        time.sleep(0.05)
    assert _helpers_started(long)
    woke: list[BaseException] = []
    waiter = threading.Thread(target=lambda: _catch(woke, lambda: ex.wait([long])), daemon=True)
    waiter.start()
    t0 = time.monotonic()
    ex.cancel()  # what Ctrl-C calls: no waiting for the kills
    assert time.monotonic() - t0 < 1.0
    waiter.join(timeout=10)
    assert not waiter.is_alive() and isinstance(woke[0], RuntimeError)  # a waiter hears it, never hangs
    with pytest.raises(RuntimeError):
        ex.submit(RunRequest(experiment_id="late"))
    ex.close()  # waits for the kills: then nothing of the run is left
    assert not wait_gone(long, timeout=1.0)
    assert not (work / "experiments" / long / "result.json").exists()  # unfinished: a resumed lab re-runs it


def _catch(into: list[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except BaseException as exc:
        into.append(exc)


def test_await_results_is_wait_as_a_coroutine(tmp_path: Path, scripts_task: ScriptsTask, make_executor: MakeExecutor) -> None:
    task = scripts_task(tmp_path / "task")

    async def main(ex: Executor) -> tuple[list[str], list[str], int]:
        ticks = 0

        async def tick() -> None:  # the loop keeps running while the executor waits
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        ex.submit(RunRequest(experiment_id="slow", change=Change(knobs={"sleep": 1.0})))
        none = await ex.await_results(["slow"], timeout=0.1, poll_s=0.05)
        done = await ex.await_results(["slow"])
        ticker.cancel()
        return [r.experiment_id for r in none], [r.experiment_id for r in done], ticks

    with make_executor(task, tmp_path / "work", slots=1) as ex:
        none, done, ticks = asyncio.run(main(ex))
    assert none == [] and done == ["slow"]
    assert ticks > 10


def test_workspace_is_a_copy_and_the_task_folder_is_untouched(tmp_path: Path, scripts_task: ScriptsTask, make_executor: MakeExecutor) -> None:
    task = scripts_task(tmp_path / "task")
    before = {p.name: p.read_bytes() for p in (tmp_path / "task").iterdir() if p.is_file()}
    diff = "--- a/ok.py\n+++ b/ok.py\n@@ -8,3 +8,3 @@\n print(\"---\")\n-print(f\"score: {float(opts.get('x', 1.0))}\")\n+print(f\"score: {2 * float(opts.get('x', 1.0))}\")\n"
    diff = diff.replace("@@ -8,3 +8,3 @@\n print(\"---\")\n", "@@ -9,2 +9,2 @@\n print(\"---\")\n")
    with make_executor(task, tmp_path / "task" / "runs", slots=1) as ex:  # work dir inside the task folder
        r = ex.run(Change(knobs={"x": 3.0}, diff=diff))
        exp_dir = ex.experiment_dir(r.experiment_id)  # type: ignore[attr-defined]
    assert r.status == "ok", r.error
    assert r.metric == 6.0
    after = {p.name: p.read_bytes() for p in (tmp_path / "task").iterdir() if p.is_file()}
    assert after == before
    assert (exp_dir / "change.diff").read_text() == diff
    assert "score: 6.0" in (exp_dir / "run.log").read_text()  # the log is here, also from a Ray node
    if _is_ray(ex):  # the node's workspace is gone with its scratch folder; the shipped bundle had no runs/
        assert r.workspace is None and r.provenance is not None and "ray node" in r.provenance.node
    else:
        ws = Path(r.workspace or "")
        assert not (ws / "runs").exists()  # the work folder is never copied into a workspace


# -- RayExecutor only ---------------------------------------------------------------------------


def test_ray_gpu_slot_asks_ray_for_one_gpu_and_the_run_gets_it(tmp_path: Path, scripts_task: ScriptsTask, ray_cluster: RayCluster) -> None:
    from autosci_graph.tools.ray import RayExecutor

    task = scripts_task(tmp_path / "task")
    with RayExecutor(task, tmp_path / "work", address=ray_cluster.address, device="cuda") as ex:
        assert ex.slots == 1  # one GPU in the cluster: one GPU slot
        r = ex.run(Change(knobs={"script": "printenv.py"}), experiment_id="gpu")
    assert r.status == "ok", r.error
    assert "ENV CUDA_VISIBLE_DEVICES=0\n" in Path(r.log_path or "").read_text()  # the GPU Ray assigned the task
    assert r.provenance is not None and r.provenance.env_fingerprint["device"] == "cuda:0"
    assert r.provenance.slot.startswith("cuda:0")


def test_ray_stuck_node_is_cancelled_through_ray_cancel_and_leaves_nothing(tmp_path: Path, scripts_task: ScriptsTask,
                                                                           ray_cluster: RayCluster) -> None:
    from autosci_graph.tools.ray import RayExecutor
    from autosci_graph.tools.ray_node import OWNER_VAR

    task = scripts_task(tmp_path / "task", timeout=2.0)
    stuck = _unique("stuck")
    # No sandbox: in bubblewrap the run's PID namespace dies with its main process, which would hide
    # whether the node's sweep finds helpers that escaped the process group.
    with RayExecutor(task, tmp_path / "work", address=ray_cluster.address, device="cpu", slots=1, grace_s=0.5,
                     cancel_slack_s=1.0, sandbox="none") as ex:
        ex.submit(RunRequest(experiment_id=stuck, change=Change(knobs={"script": "hang.py"})))
        deadline = time.time() + 30
        while not _helpers_started(stuck) and time.time() < deadline:
            time.sleep(0.05)
        environ = Path(f"/proc/{marked(stuck)[0]}/environ").read_bytes().split(b"\0")
        owner = int(next(v for v in environ if v.startswith(OWNER_VAR.encode() + b"=")).split(b"=")[1].split(b":")[0])
        os.kill(owner, signal.SIGSTOP)  # the node's Ray worker freezes: its timer and its kill cannot run
        try:
            done = ex.wait([stuck], timeout=60)  # ray.cancel, then force=True, then the executor gives up
            assert len(done) == 1 and done[0].status == "timeout"
            assert done[0].error is not None and "ray.cancel" in done[0].error
            assert ex.run(Change(knobs={"x": 0.5}), experiment_id="next").metric == 0.5  # the lab goes on
        finally:
            # The frozen worker dies at last (its node's operator, the OOM killer): the kernel kills the
            # run's main process with it, and the node's next task sweeps the helpers that left its group.
            # (In a finally: a frozen worker would hold a CPU of the shared head for the other tests.)
            os.kill(owner, signal.SIGKILL)
        while _helpers_started(stuck) and time.time() < deadline + 30:  # the main process goes first
            time.sleep(0.05)
        assert ex.run(Change(knobs={"x": 0.25}), experiment_id="after").metric == 0.25
    left = wait_gone(stuck, timeout=5)
    assert not left, _orphan_report(left, ray_cluster)


def _orphan_report(left: list[int], cluster: RayCluster) -> str:
    """What a failed sweep left: each process's state and owner, and what the nodes logged about
    orphans (the sweep logs to its Ray worker's log, not to pytest)."""
    from autosci_graph.tools.ray_node import OWNER_VAR, _environ_of, _owner_alive

    lines = []
    for pid in left:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[-1][:40]
        except OSError:
            stat = "gone"
        owner = _environ_of(pid).get(OWNER_VAR, "")
        lines.append(f"pid {pid} ({stat}) owner {owner or '?'} alive={_owner_alive(owner)}")
    logged = [ln for f in cluster.temp_dir.rglob("*") if f.suffix in (".log", ".out", ".err") and f.is_file()
              for ln in f.read_text(errors="replace").splitlines() if "orphan" in ln]
    return "left alive: " + "; ".join(lines) + "\nnode logs on orphans:\n" + "\n".join(logged[-10:] or ["(none)"])


def _owner_of(experiment_id: str) -> int:
    """The Ray worker process running an experiment (from its runs' AUTOSCI_RAY_OWNER)."""
    from autosci_graph.tools.ray_node import OWNER_VAR

    deadline = time.time() + 30
    while time.time() < deadline:
        for pid in marked(experiment_id):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            owner = next((v for v in environ if v.startswith(OWNER_VAR.encode() + b"=")), None)
            if owner is not None:
                return int(owner.split(b"=")[1].split(b":")[0])
        time.sleep(0.05)
    raise AssertionError(f"{experiment_id} never started")


@pytest.mark.parametrize("retries", [1, 0])
def test_ray_worker_killed_mid_run_is_retried_once_or_recorded_as_a_crash(tmp_path: Path, scripts_task: ScriptsTask,
                                                                          ray_cluster: RayCluster, retries: int) -> None:
    from autosci_graph.tools.ray import RayExecutor

    task = scripts_task(tmp_path / "task")
    with RayExecutor(task, tmp_path / "work", address=ray_cluster.address, device="cpu", slots=1, max_retries=retries) as ex:
        victim = _unique("victim")
        ex.submit(RunRequest(experiment_id=victim, change=Change(knobs={"sleep": 3.0, "x": 0.5})))
        os.kill(_owner_of(victim), signal.SIGKILL)  # the worker dies; the kernel takes the run with it
        (r,) = ex.wait([victim], timeout=60)
    if retries:  # Ray ran it again: one result, as if nothing happened
        assert r.status == "ok" and r.metric == 0.5
    else:  # no retry left: a failed experiment, recorded, not an exception
        assert r.status == "crash" and r.error is not None and "worker died" in r.error
    assert not wait_gone(victim, timeout=5)


def test_ray_runs_get_the_allow_list_of_the_node_and_no_secret_of_the_lab(tmp_path: Path, scripts_task: ScriptsTask,
                                                                            ray_cluster: RayCluster,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from autosci_graph.tools.ray import RayExecutor

    monkeypatch.setenv("OPENAI_API_KEY", "sk-lab-secret-0041")  # the lab's: must not travel
    monkeypatch.setenv("NODE_SETTING", "lab-value-0044")  # passed by name, but the node's value applies
    task = scripts_task(tmp_path / "task", pass_env=("NODE_SETTING",))
    with RayExecutor(task, tmp_path / "work", address=ray_cluster.address, device="cpu") as ex:
        r = ex.run(Change(knobs={"script": "printenv.py"}), experiment_id="env")
    assert r.status == "ok", r.error
    log = Path(r.log_path or "").read_text()
    assert "sk-lab-secret-0041" not in log and "OPENAI_API_KEY" not in log
    assert "node-secret-0042" not in log and "NODE_API_TOKEN" not in log  # the allow-list, on the node
    assert "ENV NODE_SETTING=node-plain-0043\n" in log and "lab-value-0044" not in log
    assert r.provenance is not None and "NODE_SETTING" in r.provenance.env_names
