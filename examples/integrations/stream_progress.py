"""Progress of a lab streamed to a caller, for a UI to show as it happens.

``graph.stream(..., stream_mode=["updates", "custom"])`` yields, as they happen:

* ``("updates", {node: update})`` after each lab node: ``organize`` (teams), ``team`` (a branch
  submitted its approved experiment), ``collect`` (a result came in), ``share`` (the lab judged it);
* ``("custom", event)`` progress events the lab emits: ``team_formed``, ``experiment_finished``,
  ``promotion``, ``team_falsified``, ``regroup``, ``stopping``...

``render`` turns them into the lines a UI (a terminal, a web socket, a Streamlit app) would show.
The LangGraph server streams the same modes to remote clients (``stream_subgraphs=True``).

Run: ``python examples/integrations/stream_progress.py``
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from autosci_graph import build_lab_graph

from _toy import toy_context


def render(mode: str, chunk: Any) -> str | None:
    """One line for a UI, or ``None`` for chunks not worth showing."""
    if mode == "custom":
        kind = chunk.get("type")
        if kind == "team_formed":
            return f"team {chunk['team']} formed: {chunk['hypothesis']}"
        if kind == "experiment_finished":
            metric = chunk["metric"]
            return f"finished {chunk['experiment_id']}: {chunk['status']}" + (f", metric {metric:.4f}" if metric is not None else "")
        if kind == "stopping":
            return f"stopping: {chunk['reason']}"
        return f"{kind}: {chunk.get('team') or chunk.get('reason') or ''}".rstrip(": ")
    if mode == "updates":
        for node, update in chunk.items():
            if node == "share" and update and update.get("champion"):
                return f"champion now {update['champion']['metric']:.4f} ({update['champion']['config']})"
    return None


def stream_lab(max_experiments: int = 10) -> Iterator[tuple[str, Any]]:
    """The raw ``(mode, chunk)`` stream of a short lab on the toy task."""
    ctx = toy_context(max_experiments=max_experiments)
    graph = build_lab_graph().compile(checkpointer=InMemorySaver(), name="autosci-lab")
    try:
        yield from graph.stream({"run_id": "ui"}, context=ctx, stream_mode=["updates", "custom"],
                                config={"configurable": {"thread_id": "ui"}, "recursion_limit": 10_000,
                                        "run_name": "autosci-lab", "tags": ["autosci", "example"],
                                        "metadata": {"example": "stream_progress"}})
    finally:
        ctx.executor.close()


def main(show: Callable[[str], None] = print, max_experiments: int = 10) -> dict[str, Any]:
    """Stream a lab, showing each line with ``show``; returns the lines and the raw chunks."""
    lines: list[str] = []
    chunks: list[tuple[str, Any]] = []
    for mode, chunk in stream_lab(max_experiments):
        chunks.append((mode, chunk))
        line = render(mode, chunk)
        if line:
            lines.append(line)
            show(line)
    return {"lines": lines, "chunks": chunks}


if __name__ == "__main__":
    main()
