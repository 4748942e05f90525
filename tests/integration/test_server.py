"""The served graph (autosci_graph/server.py) run in process on its async path, as the server runs it.

A server cancels a run by cancelling the asyncio task that streams the graph (``runs.cancel``); here
the test does the same to ``ainvoke``: the experiments in flight are killed, nothing is left alive,
and a new run on the thread with no input resumes the lab and finishes the budget exactly.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from autosci_graph.server import build_server_graph
from tests.support.cli import finished_results
from tests.support.processes import lab_processes, live_groups

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tests" / "integration" / "tasks" / "quadratic"
BUDGET = 8


def test_a_cancelled_server_run_stops_its_experiments_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    request = {"task_dir": str(TASK), "teams": 2, "slots": 2, "max_experiments": BUDGET, "stop_after_no_keep": 0,
               "memory": False, "run_dir": str(run_dir), "run_id": "served", "fixed": {"sleep": 3}}
    graph = build_server_graph().compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "cancelled"}}
    seen: dict[int, int] = {}

    async def run_then_cancel() -> tuple[dict[str, int], set[str], float]:
        run = asyncio.create_task(graph.ainvoke(request, config))
        deadline = time.monotonic() + 300
        while True:  # three finished and processes of runs in flight up
            assert not run.done(), f"the run ended before it could be cancelled: {run.result()}"
            assert time.monotonic() < deadline, "never saw three finished experiments and one in flight"
            seen.update(lab_processes("served"))
            if len(finished_results(run_dir)) >= 3 and seen:
                break
            await asyncio.sleep(0.1)
        run.cancel()
        t0 = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await run
        took = time.monotonic() - t0
        # Read once the run is over: an experiment may finish just before the cancel.
        before = finished_results(run_dir)
        started = {p.parent.name for p in (run_dir / "experiments").glob("*/request.json")}
        return before, started - set(before), took

    before, stopped, took = asyncio.run(run_then_cancel())
    assert took < 30, f"the cancel took {took:.1f} s"
    assert not lab_processes("served") and not live_groups(set(seen.values()))
    assert stopped and not [e for e in stopped if (run_dir / "experiments" / e / "result.json").exists()]

    final: dict[str, Any] = asyncio.run(graph.ainvoke(None, config))  # the same thread, no input: resume
    assert final["stop_reason"] == f"experiment budget spent ({BUDGET})" and final["experiments"] == BUDGET
    after = finished_results(run_dir)
    assert len(after) == BUDGET, sorted(after)
    for eid, mtime in before.items():
        assert after[eid] == mtime, f"{eid} finished before the cancel but ran again"
    assert stopped <= set(after), "an experiment stopped by the cancel never ran again"
    assert not lab_processes("served")
