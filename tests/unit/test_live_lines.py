"""Plain progress lines (CI logs, pipes): the lab and the single-agent baseline print the same kinds."""

from __future__ import annotations

import io

from lab_helpers import make_synth_task, synth_loss
from langgraph.checkpoint.memory import InMemorySaver
from rich.console import Console

from autosci_graph.cli.live import LiveView
from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.graphs.single_agent import build_single_agent_graph
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.tools.inprocess import FunctionExecutor


def _lines(build, slots: int) -> list[str]:  # type: ignore[no-untyped-def]
    task = make_synth_task()
    settings = LabSettings(n_teams=2, max_experiments=8, stop_after_no_keep=None, seed=0)
    out = io.StringIO()
    view = LiveView(task, settings, console=Console(file=out, force_terminal=False, width=200))
    ex = FunctionExecutor(synth_loss(), metric_name="loss", slots=slots, synchronous=True)
    ctx = LabContext(task=task, executor=ex, scientist=SearchScientist(), poll_s=0.01, settings=settings)
    graph = build().compile(checkpointer=InMemorySaver())
    config = {"recursion_limit": 10_000, "configurable": {"thread_id": "live"}}
    try:
        with view:
            for mode, chunk in graph.stream({"run_id": "live"}, config, context=ctx, stream_mode=["values", "custom"]):
                view(mode, chunk)
    finally:
        ex.close()
    return out.getvalue().splitlines()


def test_the_single_agent_prints_the_labs_progress_lines() -> None:
    solo, lab = _lines(build_single_agent_graph, 1), _lines(build_lab_graph, 2)
    for lines in (solo, lab):
        assert sum(ln.startswith("[autosci] finished ") for ln in lines) == 8  # one per experiment, baselines included
        assert any(ln.startswith("[autosci] stopping: ") and "budget" in ln for ln in lines)
    assert any(ln.startswith("[autosci] new champion from solo: ") for ln in solo)
    # No event prints an empty line: every line says something after its label.
    assert all(ln.split(":", 1)[1].strip() for ln in solo + lab if ln.startswith("[autosci]"))


def test_an_event_with_nothing_to_say_prints_no_line() -> None:
    out = io.StringIO()
    view = LiveView(make_synth_task(), LabSettings(), console=Console(file=out, force_terminal=False))
    view("custom", {"type": "teams_merged"})
    view("custom", {"type": "duplicate_skipped", "reason": "another team claimed it"})
    assert out.getvalue().splitlines() == ["[autosci] duplicate skipped: another team claimed it"]
