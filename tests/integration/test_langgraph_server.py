"""``langgraph dev`` serves the lab from the repository's ``langgraph.json``; a client runs it over HTTP.

The run is real: the served graph loads a task folder (a tiny stdlib training script), launches
its experiments as subprocesses, and returns the champion. The server refuses blocking I/O on its
event loop, so this also checks that the lab's blocking work runs off the loop without
``--allow-blocking``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tests" / "integration" / "tasks" / "quadratic"
LANGGRAPH = Path(sys.executable).with_name("langgraph")

if not LANGGRAPH.exists():
    pytest.skip("langgraph-cli is not installed: pip install 'langgraph-cli[inmem]' (in the dev extra)",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``langgraph dev`` on a free port, run from a copy of the repo's ``langgraph.json``."""
    workdir = tmp_path_factory.mktemp("langgraph-server")
    # The server writes .langgraph_api/ next to its working directory; keep that out of the repo.
    config = workdir / "langgraph.json"
    shutil.copy(ROOT / "langgraph.json", config)
    (workdir / "autosci_graph").symlink_to(ROOT / "autosci_graph")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true",
           "LANGSMITH_TRACING": "false", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    log = (workdir / "server.log").open("w")
    proc = subprocess.Popen(
        [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port),
         "--config", str(config)],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _ok(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"langgraph dev did not come up on {url}:\n{(workdir / 'server.log').read_text()[-4000:]}")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()


def test_langgraph_dev_serves_the_lab(server: str, tmp_path: Path) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server, api_key=None)
    assert [a["graph_id"] for a in client.assistants.search(graph_id="lab")] == ["lab"]

    thread = client.threads.create()
    request = {"task_dir": str(TASK), "teams": 2, "slots": 2, "max_experiments": 6, "stop_after_no_keep": 0,
               "memory": False, "run_dir": str(tmp_path / "run"), "run_id": "served"}
    modes: dict[str, int] = {}
    custom: list[dict] = []
    nodes: set[str] = set()
    for part in client.runs.stream(thread["thread_id"], "lab", input=request, stream_mode=["updates", "custom"],
                                   stream_subgraphs=True):
        event = part.event.split("|")[0]
        modes[event] = modes.get(event, 0) + 1
        if event == "custom":
            custom.append(part.data)
        elif event == "updates" and isinstance(part.data, dict):
            nodes.update(part.data)
        elif event == "error":
            pytest.fail(f"the served run failed: {part.data}")

    final = client.threads.get_state(thread["thread_id"])["values"]
    assert final["run_id"] == "served" and final["stop_reason"] == "experiment budget spent (6)"
    assert final["experiments"] == 6
    champion = final["champion"]
    # Every experiment really ran: the champion's metric is what the training script printed.
    assert champion["metric"] is not None and 0.9 < champion["metric"] < 2.5
    assert (tmp_path / "run" / "report.md").is_file() and (tmp_path / "run" / "progress.png").is_file()
    assert len(list((tmp_path / "run" / "experiments").iterdir())) == 6

    # Progress reached the caller: the outer graph's nodes, the lab's nodes (subgraph updates),
    # and the lab's custom events.
    assert {"prepare", "lab", "organize", "collect", "share"} <= nodes
    types = [e.get("type") for e in custom]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.count("experiment_finished") == 6 and "team_formed" in types


def test_a_bad_request_fails_the_run_with_the_reason(server: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server, api_key=None)
    thread = client.threads.create()
    out = client.runs.wait(thread["thread_id"], "lab", input={"task_dir": "/no/such/task"}, raise_error=False)
    # The server hides exception messages from clients; the error class names the cause.
    assert out["__error__"]["error"] == "TaskError", out
    runs = client.runs.list(thread["thread_id"])
    assert runs and runs[0]["status"] == "error"


def test_a_threadless_run_returns_the_result(server: str, tmp_path: Path) -> None:
    """The README's one-call form: ``runs.wait(None, "lab", input=...)`` returns the summary."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server, api_key=None)
    final = client.runs.wait(None, "lab", input={"task_dir": str(TASK), "teams": 1, "slots": 1, "max_experiments": 3,
                                                 "memory": False, "run_dir": str(tmp_path / "run")})
    assert final["experiments"] == 3 and final["stop_reason"] == "experiment budget spent (3)"
    assert Path(final["outputs"]["report"]).is_file()


def test_runs_cancel_stops_the_experiments_and_the_thread_resumes(server: str, tmp_path: Path) -> None:
    """``runs.cancel`` mid-run: no experiment process is left alive; a new run on the thread with
    no input resumes the lab and finishes the budget, the stopped experiments run again."""
    from langgraph_sdk import get_sync_client

    from tests.support.cli import finished_results
    from tests.support.processes import lab_processes, live_groups

    client = get_sync_client(url=server, api_key=None)
    thread = client.threads.create()["thread_id"]
    run_dir = tmp_path / "run"
    request = {"task_dir": str(TASK), "teams": 2, "slots": 2, "max_experiments": 8, "stop_after_no_keep": 0,
               "memory": False, "run_dir": str(run_dir), "run_id": "cancelled", "fixed": {"sleep": 3}}
    run = client.runs.create(thread, "lab", input=request)
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 300
    while not (len(finished_results(run_dir)) >= 3 and seen):
        assert time.monotonic() < deadline, "never saw three finished experiments and one in flight"
        assert client.runs.get(thread, run["run_id"])["status"] in ("pending", "running")
        seen.update(lab_processes("cancelled"))
        time.sleep(0.1)
    client.runs.cancel(thread, run["run_id"], wait=True)
    deadline = time.monotonic() + 30
    while (lab_processes("cancelled") or live_groups(set(seen.values()))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not lab_processes("cancelled") and not live_groups(set(seen.values())), "an experiment outlived runs.cancel"
    before = finished_results(run_dir)  # read once nothing runs: an experiment may finish just before the cancel
    stopped = {p.parent.name for p in (run_dir / "experiments").glob("*/request.json")} - set(before)
    assert stopped and not [e for e in stopped if (run_dir / "experiments" / e / "result.json").exists()]

    final = client.runs.wait(thread, "lab", input=None)
    assert final["experiments"] == 8 and final["stop_reason"] == "experiment budget spent (8)", final
    after = finished_results(run_dir)
    assert len(after) == 8 and stopped <= set(after)
    assert all(after[e] == m for e, m in before.items()), "an experiment finished before the cancel ran again"


def test_approval_is_an_interrupt_a_client_answers(server: str, tmp_path: Path) -> None:
    """``"approve": true``: the thread stops at an interrupt showing the proposal before it costs
    compute, as LangGraph Studio shows it; the client resumes the run with ``command={"resume": ...}``."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server, api_key=None)
    thread = client.threads.create()["thread_id"]
    run_dir = tmp_path / "run"
    request = {"task_dir": str(TASK), "teams": 1, "slots": 1, "max_experiments": 5, "stop_after_no_keep": 0,
               "memory": False, "run_dir": str(run_dir), "run_id": "approved", "approve": True}
    client.runs.wait(thread, "lab", input=request)
    state = client.threads.get_state(thread)
    assert client.threads.get(thread)["status"] == "interrupted"
    assert len(state["interrupts"]) == 1
    payload = state["interrupts"][0]["value"]
    assert payload["type"] == "approval" and payload["team"] == "t1" and payload["knobs"] and payload["reviews"]
    asked = [payload["proposal_id"]]
    # Only the baseline ran: the proposal waits for its verdict.
    assert {p.name for p in (run_dir / "experiments").iterdir()} == {f"approved-base-s{s}" for s in range(3)}

    final = client.runs.wait(thread, "lab", command={"resume": {"action": "approve"}})
    for _ in range(10):  # later proposals ask again; approve them too
        waiting = client.threads.get_state(thread)["interrupts"]
        if not waiting:
            break
        asked.append(waiting[0]["value"]["proposal_id"])
        final = client.runs.wait(thread, "lab", command={"resume": "approve"})
    assert final["stop_reason"] == "experiment budget spent (5)" and final["experiments"] == 5, final
    values = client.threads.get_state(thread)["values"]
    assert values["stop_reason"] == "experiment budget spent (5)" and client.threads.get(thread)["status"] == "idle"
    ran = {p.name for p in (run_dir / "experiments").iterdir()}
    assert any(name.startswith(asked[0].rsplit("-v", 1)[0]) for name in ran), (asked, ran)
