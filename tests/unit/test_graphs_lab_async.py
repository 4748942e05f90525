"""The lab graph's async path (autosci_graph/graphs/acts.py, lab.py, team.py; Scientist's async hooks).

``ainvoke`` with ``AsyncSqliteSaver`` reaches the same final log as ``invoke`` for the same seed on
a synchronous FunctionExecutor, awaits the scientist's async hooks (a sync-only scientist works
unchanged, through the default hooks), and resumes exactly after a failure mid-run.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from lab_helpers import make_synth_task, synth_loss
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.scientists.base import (
    CritiqueReply, HypothesisDraft, LabView, OrganizeReply, ProposalDraft, ProposeReply, RecalledMemory, ReviewDraft,
    Scientist,
)
from autosci_graph.state import Proposal, Team, Usage
from autosci_graph.task import CategoricalKnob
from autosci_graph.tools.inprocess import FunctionExecutor

TASK = make_synth_task()
SETTINGS = LabSettings(n_teams=2, max_experiments=14, stop_after_no_keep=None, seed=3)
CONFIG = {"configurable": {"thread_id": "async-lab"}, "recursion_limit": 10_000}


class ScriptedScientist(Scientist):
    """A sync-only scientist whose answers follow from the view alone: one team per untested axis,
    steps up and down the team's axis from the champion, every proposal approved."""

    name = "scripted"

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, act: str) -> None:
        with self._lock:
            self.calls[act] += 1

    def organize(self, view: LabView, *, n_teams: int, agents: list[str]) -> OrganizeReply:
        self._count("organize")
        return self._organize(view, n_teams, agents)

    def propose(self, view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int = 2) -> ProposeReply:
        self._count("propose")
        return self._propose(view, team, n)

    def critique(self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> CritiqueReply:
        self._count("critique")
        return CritiqueReply(review=ReviewDraft(approve=True, reason=f"{reviewer}: scripted approval"), usage=Usage(calls=1))

    @staticmethod
    def _organize(view: LabView, n_teams: int, agents: list[str]) -> OrganizeReply:
        axes = list(view.knowledge.untested_axes) or sorted(view.task.knobs)
        drafts = [HypothesisDraft(statement=f"{axis} is mis-set in the default", prediction="a step beats the champion",
                                  falsification="three refuting discards", axes=[axis], author=agents[i % len(agents)])
                  for i, axis in enumerate(axes[: n_teams + 1])]
        return OrganizeReply(hypotheses=drafts, usage=Usage(calls=1))

    @staticmethod
    def _propose(view: LabView, team: Team, n: int) -> ProposeReply:
        axis = team.hypothesis.axes[0]
        knob = view.task.knobs[axis]
        tried = sum(1 for e in view.experiments if e.proposal.axis == axis)
        current = view.champion.config[axis]
        drafts = []
        if isinstance(knob, CategoricalKnob):
            others = [c for c in knob.choices if c != current]
            drafts = [ProposalDraft(axis=axis, direction="set", knobs={axis: others[(tried + i) % len(others)]},
                                    rationale=f"try another {axis}", bold=i == 0) for i in range(min(n, len(others)))]
        else:
            for i, (direction, factor) in enumerate((("increase", 2.0 + tried), ("decrease", 1 / (2.0 + tried)))[:n]):
                value = min(knob.high, max(knob.low, current * factor))
                value = int(round(value)) if isinstance(current, int) else value
                drafts.append(ProposalDraft(axis=axis, direction=direction, knobs={axis: value},  # type: ignore[arg-type]
                                            rationale=f"{direction} {axis}", bold=i == 0))
        return ProposeReply(proposals=drafts, usage=Usage(calls=1))


class AsyncScriptedScientist(ScriptedScientist):
    """The same answers through native async hooks (which the sync path must never call)."""

    async def aorganize(self, view: LabView, *, n_teams: int, agents: list[str]) -> OrganizeReply:
        await asyncio.sleep(0)
        self._count("aorganize")
        return self._organize(view, n_teams, agents)

    async def apropose(self, view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int = 2) -> ProposeReply:
        await asyncio.sleep(0)
        self._count("apropose")
        return self._propose(view, team, n)

    async def acritique(self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> CritiqueReply:
        await asyncio.sleep(0)
        self._count("acritique")
        return CritiqueReply(review=ReviewDraft(approve=True, reason=f"{reviewer}: scripted approval"), usage=Usage(calls=1))


class FailingOnce(AsyncScriptedScientist):
    """Breaks (a failed system, not a failed turn) at its ``at``-th proposal."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    async def apropose(self, view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int = 2) -> ProposeReply:
        self._count("attempt")
        if self.calls["attempt"] == self.at:
            raise RuntimeError("scripted failure mid-run")
        return await super().apropose(view, team=team, author=author, recalled=recalled, n=n)


def _context(scientist: Scientist) -> LabContext:
    executor = FunctionExecutor(synth_loss(), metric_name="loss", slots=2, synchronous=True)
    return LabContext(task=TASK, executor=executor, scientist=scientist, settings=SETTINGS, poll_s=1.0)


def _log(final: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The lab's decisions and results, without timestamps."""
    return [(e["result"]["experiment_id"], e["kind"], e["outcome"], sorted(e["result"]["change"]["knobs"].items()),
             e["result"]["seed"], e["result"]["metric"]) for e in final["log"]]


def _sync_run(scientist: Scientist) -> dict[str, Any]:
    ctx = _context(scientist)
    try:
        return build_lab_graph().compile(checkpointer=InMemorySaver()).invoke({"run_id": "lab"}, CONFIG, context=ctx)
    finally:
        ctx.executor.close()


async def _async_run(scientist: Scientist, db: Path, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    ctx = _context(scientist)
    try:
        async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
            graph = build_lab_graph().compile(checkpointer=saver)
            final: dict[str, Any] = {}
            async for final in graph.astream(inputs, CONFIG, context=ctx, stream_mode="values"):
                pass
            return final
    finally:
        ctx.executor.close()


@pytest.fixture(scope="module")
def sync_log() -> list[tuple[Any, ...]]:
    scientist = AsyncScriptedScientist()
    final = _sync_run(scientist)
    assert len(final["log"]) == SETTINGS.max_experiments and any(e["outcome"] == "keep" for e in final["log"][3:])
    assert not {"aorganize", "apropose", "acritique"} & set(scientist.calls)  # invoke never awaits
    return _log(final)


def test_ainvoke_with_async_sqlite_reaches_the_same_log_through_the_async_hooks(tmp_path: Path, sync_log: list[tuple[Any, ...]]) -> None:
    scientist = AsyncScriptedScientist()
    final = asyncio.run(_async_run(scientist, tmp_path / "checkpoints.sqlite", {"run_id": "lab"}))
    assert _log(final) == sync_log
    assert scientist.calls["apropose"] and scientist.calls["acritique"] and scientist.calls["aorganize"]
    assert not {"organize", "propose", "critique"} & set(scientist.calls)  # the sync methods are never called


def test_a_sync_only_scientist_runs_unchanged_under_ainvoke(tmp_path: Path, sync_log: list[tuple[Any, ...]]) -> None:
    scientist = ScriptedScientist()  # the base class's async hooks run its sync methods in a thread
    final = asyncio.run(_async_run(scientist, tmp_path / "checkpoints.sqlite", {"run_id": "lab"}))
    assert _log(final) == sync_log
    assert scientist.calls["propose"] and scientist.calls["critique"]


def test_the_async_path_resumes_exactly_from_async_sqlite(tmp_path: Path, sync_log: list[tuple[Any, ...]]) -> None:
    db = tmp_path / "checkpoints.sqlite"
    with pytest.raises(RuntimeError, match="scripted failure"):
        asyncio.run(_async_run(FailingOnce(at=5), db, {"run_id": "lab"}))

    async def checkpointed() -> dict[str, Any]:
        async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
            return dict((await build_lab_graph().compile(checkpointer=saver).aget_state(CONFIG)).values)

    partial = asyncio.run(checkpointed())
    assert 0 < len(partial["log"]) < SETTINGS.max_experiments  # it stopped mid-run, with a checkpoint
    # A new process's services, the same database: the run goes on from its checkpoint.
    final = asyncio.run(_async_run(AsyncScriptedScientist(), db))
    assert _log(final) == sync_log
