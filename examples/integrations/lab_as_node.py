"""The compiled lab graph as one node of your own LangGraph app.

An app that takes a request in words, turns it into a run, lets the lab work, then summarizes the
champion::

    START → intake → lab (the compiled AutoScientists graph) → summarize → END

The app's state extends ``LabState``, so the lab node reads and writes the same keys; the lab's
services travel in ``context`` (the app declares ``LabContext`` as its ``context_schema``). Node
names, ``run_name``, tags and metadata make the trace readable in LangSmith, if you use it.

Run: ``python examples/integrations/lab_as_node.py``
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from autosci_graph import LabContext, LabState, build_lab_graph

from _toy import toy_context


class AppState(LabState, total=False):
    """The lab's notebook plus this app's own keys."""

    request: str
    summary: str


def intake(state: AppState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Name the run after the request (an app would also validate, authorize, log...)."""
    slug = "-".join(re.findall(r"[a-z0-9]+", state["request"].lower())[:4])
    return {"run_id": f"app-{slug}"}


def summarize(state: AppState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Turn the lab's final notebook into the app's answer."""
    champ = state["champion"] or {}
    metric = runtime.context.task.metric.name
    baseline = min(e["result"]["metric"] for e in state["log"] if e["kind"] == "baseline")
    changed = {k: v for k, v in champ["config"].items() if runtime.context.task.default_config().get(k) != v}
    return {"summary": f"{metric} {baseline:.3f} → {champ['metric']:.3f} after {len(state['log'])} experiments "
                       f"by changing {changed or 'nothing'} ({state['stop_reason']})"}


def build_app() -> StateGraph:
    app = StateGraph(AppState, context_schema=LabContext)
    app.add_node("intake", intake)
    # The whole lab is one node; its own nodes (organize, team, collect, share) nest under it.
    app.add_node("lab", build_lab_graph().compile(name="autosci-lab"))
    app.add_node("summarize", summarize)
    app.add_edge(START, "intake")
    app.add_edge("intake", "lab")
    app.add_edge("lab", "summarize")
    app.add_edge("summarize", END)
    return app


def main(callbacks: list[BaseCallbackHandler] | None = None) -> dict[str, Any]:
    """Run the app once on the toy task; returns its final state (``summary``, ``champion``, ...)."""
    graph = build_app().compile(checkpointer=InMemorySaver(), name="my-research-app")
    ctx = toy_context(max_experiments=10)
    try:
        return graph.invoke(
            {"request": "Lower the toy model's loss"}, context=ctx,
            config={"configurable": {"thread_id": "app-1"}, "recursion_limit": 10_000, "callbacks": callbacks,
                    "run_name": "my-research-app", "tags": ["autosci", "example"],
                    "metadata": {"task": ctx.task.name, "example": "lab_as_node"}},
        )
    finally:
        ctx.executor.close()


if __name__ == "__main__":
    print(main()["summary"])
