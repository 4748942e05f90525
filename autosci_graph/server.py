"""The lab as a graph LangGraph's own server can serve (``langgraph dev``, ``langgraph up``).

``langgraph.json`` at the repository root points at :func:`make_graph`. A server run cannot hand
the lab its live services (executor, scientist, memory) over HTTP, so the served graph is a small
outer graph whose *input is plain JSON* naming a task folder and the run's settings::

    START → prepare → lab → END

* ``prepare`` loads and checks the task (a bad folder fails here, with the file, field and fix) and
  picks the run id and run directory;
* ``lab`` builds the :class:`~autosci_graph.graphs.context.LabContext` (a
  :class:`~autosci_graph.tools.local.LocalExecutor` in the run directory, or a
  :class:`~autosci_graph.tools.ray.RayExecutor` for ``"executor": "ray"``, the offline
  ``SearchScientist`` or an ``LLMScientist`` for ``model``, the Chroma memory), runs the lab graph
  *as a subgraph* (its checkpoints go to the server's checkpointer, its node updates and progress
  events stream to the caller with ``stream_subgraphs=True``), then writes ``results.tsv``,
  ``progress.png`` and ``report.md`` to the run directory and returns a summary.

``prepare`` is a synchronous function; ``lab`` has a sync body (``invoke``) and an async one
(``ainvoke``, which the server uses). The server runs graphs on an asyncio event loop and refuses
blocking calls on it (unless started with ``--allow-blocking``): LangGraph runs a synchronous node
in a worker thread, and the async ``lab`` builds its services, waits and writes its report in
worker threads, so the subprocesses, file I/O and waits of a lab never touch the loop and the
server needs no extra flag. Cancelling a run (``client.runs.cancel``) cancels the async ``lab``:
its experiments are killed and left unfinished, and a new run on the same thread with no input
(``client.runs.wait(thread_id, "lab", input=None)``) resumes the lab from its checkpoint.

Drive it with ``langgraph_sdk``::

    from langgraph_sdk import get_sync_client

    client = get_sync_client(url="http://127.0.0.1:2024")
    final = client.runs.wait(None, "lab", input={"task_dir": "examples/gpt_bpb", "teams": 2,
                                                  "max_experiments": 12})
    print(final["champion"]["metric"], final["report"])

Secrets (``OPENAI_API_KEY``, ...) are read from the server's environment, never from the input.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.runnables import RunnableLambda
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
# pydantic (LangGraph's input and output JSON schemas) needs typing_extensions' TypedDict before Python 3.12.
from typing_extensions import Required, TypedDict

from autosci_graph.errors import SettingsError
from autosci_graph.scientists.structured_output import StructuredOutput, check

#: Name of the served graph in ``langgraph.json`` (``assistant_id`` for ``langgraph_sdk``).
GRAPH_NAME = "lab"


class LabRequest(TypedDict, total=False):
    """What a server run is asked to do: plain JSON, the same choices as ``autosci run``."""

    #: Task folder with a ``task.toml``, absolute or relative to the server's working directory.
    task_dir: Required[str]
    #: ``"lab"`` (self-organizing teams, default) or ``"single"`` (the single-agent baseline).
    mode: Literal["lab", "single"]
    #: Teams formed at start and on regroup (default 3).
    teams: int
    #: Concurrent experiments (default: GPUs, else CPU cores).
    slots: int
    #: How runs are contained: ``"auto"`` (default, bubblewrap), ``"bwrap"`` or ``"none"``.
    sandbox: Literal["auto", "bwrap", "none"]
    #: Experiment budget (default 30).
    max_experiments: int
    #: Wall-clock budget: seconds, or a duration such as ``"10m"`` or ``"2h"``.
    deadline: float | str
    #: Stop after this many explorations without a keep (0: never; default 10).
    stop_after_no_keep: int
    #: Fixed run arguments the harness overrides, e.g. ``{"time_budget": 0, "max_steps": 60}``.
    fixed: dict[str, Any]
    #: ``provider:model`` for an LLM scientist (default: the offline SearchScientist).
    model: str
    #: ``provider:model`` for critiques (default: ``model``).
    critic_model: str
    #: Base URL of an OpenAI-compatible server, for ``openai-compatible:NAME`` models.
    base_url: str
    #: How answers are asked for: ``"prompt"`` (default, any model), ``"json_schema"`` (the bounded
    #: schema as ``response_format``), ``"function_calling"`` (as one forced tool) or ``"auto"``
    #: (per provider, see ``autosci_graph.scientists.structured_output``).
    structured_output: StructuredOutput
    #: LLM token budget (input + output) and cost budget in USD.
    max_tokens: int
    max_cost: float
    #: USD per 1k input / output tokens (default: the model's price in ``scientists/prices.py``).
    price_in: float
    price_out: float
    #: Seconds one LLM call may take before it counts as a failed turn (default 120; 0: no limit).
    call_timeout_s: float
    #: Stop after this many rounds in a row in which the agents gave no usable answer (default 5).
    max_failed_rounds: int
    #: Record every run in the experiment memory and recall past failures (default true).
    memory: bool
    #: Memory folder (default: the shared one under ``~/.cache/autosci_graph``).
    memory_path: str
    #: A Chroma server (``chroma run``) for the memory, shared by several labs (excludes ``memory_path``).
    memory_host: str
    memory_port: int
    #: Where experiments run: ``"local"`` (default) or ``"ray"`` (Ray tasks on a cluster).
    executor: Literal["local", "ray"]
    #: The Ray cluster for ``executor="ray"`` (``HOST:PORT``; default: the server's ``RAY_ADDRESS``).
    ray_address: str
    #: CPUs one CPU experiment gets (its threads; on Ray, its ``num_cpus``; default 1).
    cpus_per_slot: int
    #: A human approves each proposal before it costs compute: the thread stops at an interrupt
    #: showing the proposal, and a client resumes it with ``command={"resume": verdict}``
    #: (``autosci_graph.graphs.approval``; default false).
    approve: bool
    #: Run id (default: a timestamp plus a random suffix).
    run_id: str
    #: Where outputs go (default ``runs/TASK-RUN_ID`` under the server's working directory).
    run_dir: str


class LabResult(TypedDict, total=False):
    """What a server run returns."""

    run_id: str
    run_dir: str
    task_name: str
    stop_reason: str | None
    #: The champion: ``metric``, ``config``, ``experiment_id`` (``None``: the default configuration), ``seeds``.
    champion: dict[str, Any] | None
    #: Experiments finished (baseline runs included).
    experiments: int
    #: Changes accepted as the new champion.
    keeps: int
    #: LLM usage: calls, input_tokens, output_tokens, cost_usd.
    usage: dict[str, Any]
    #: Paths of ``results.tsv``, ``progress.png`` and ``report.md``.
    outputs: dict[str, str]


class ServerState(LabRequest, LabResult, total=False):
    """The outer graph's state: the request, then the result."""


def _settings(req: LabRequest) -> dict[str, Any]:
    from autosci_graph.graphs.context import LabSettings
    from autosci_graph.runner import settings_dict

    deadline = req.get("deadline")
    if isinstance(deadline, str):
        from autosci_graph.cli.lab import parse_duration

        deadline = parse_duration(deadline)
    settings = LabSettings(
        n_teams=req.get("teams", 3), max_experiments=req.get("max_experiments", 30),
        deadline=time.time() + float(deadline) if deadline else None,
        stop_after_no_keep=req.get("stop_after_no_keep", 10) or None,
        max_failed_rounds=req.get("max_failed_rounds", 5), max_tokens=req.get("max_tokens"),
        max_cost_usd=req.get("max_cost"), human_approval=bool(req.get("approve", False)),
    )
    return settings_dict(settings)


def _price(req: LabRequest) -> Any:
    """The prices the run counts its cost at (refuses a cost budget nothing could count)."""
    from autosci_graph.scientists.prices import resolve_prices

    return resolve_prices(req.get("model"), req.get("price_in"), req.get("price_out"), req.get("max_cost"),
                          flag="max_cost")


def prepare(state: ServerState) -> dict[str, Any]:
    """Check the request and the task folder; choose the run id and directory."""
    from autosci_graph.task import load_task

    if not state.get("task_dir"):
        raise SettingsError("the input needs task_dir: a task folder with a task.toml, e.g. {\"task_dir\": \"examples/gpt_bpb\"}")
    if state.get("mode", "lab") not in ("lab", "single"):
        raise SettingsError(f"mode {state.get('mode')!r}: expected 'lab' or 'single'")
    if state.get("approve") and state.get("mode") == "single":
        raise SettingsError("approve gates the lab's team proposals; the single-agent baseline has none")
    task = load_task(state["task_dir"])
    _settings(state)  # fail here, before any run, on settings the lab would refuse
    _price(state)
    try:
        check(state.get("structured_output", "prompt"))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    from autosci_graph.tools.executors import check_kind

    check_kind(state.get("executor", "local"))
    if state.get("memory_host") and state.get("memory_path"):
        raise SettingsError("give the memory either memory_path (a local folder) or memory_host (a Chroma server), not both")
    run_id = state.get("run_id") or time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    run_dir = Path(state.get("run_dir") or Path("runs") / f"{task.name}-{run_id}").expanduser().resolve()
    return {"task_dir": str(task.root), "task_name": task.name, "run_id": run_id, "run_dir": str(run_dir)}


@dataclass
class _Run:
    """A server run's services, built from its request."""

    spec: Any
    task: Any
    run_dir: Path
    ctx: Any
    graph: Any

    @property
    def config(self) -> dict[str, Any]:
        from autosci_graph.runner import RECURSION_LIMIT

        return {"recursion_limit": RECURSION_LIMIT, "run_name": f"autosci-{self.spec.mode}",
                "tags": ["autosci", self.spec.mode, self.task.name],
                "metadata": {"task": self.task.name, "run_id": self.spec.run_id}}


def _services(state: ServerState) -> _Run:
    from autosci_graph.graphs.context import LabContext
    from autosci_graph.runner import RunSpec, build_graph, make_scientist
    from autosci_graph.tools.executors import make_executor

    spec = RunSpec(task_dir=state["task_dir"], run_id=state["run_id"], settings=_settings(state),
                   mode=state.get("mode", "lab"), model=state.get("model"), critic_model=state.get("critic_model"),
                   base_url=state.get("base_url"), structured_output=state.get("structured_output", "prompt"),
                   slots=state.get("slots"), memory=state.get("memory", True),
                   memory_path=state.get("memory_path"), fixed=dict(state.get("fixed") or {}),
                   sandbox=state.get("sandbox", "auto"), call_timeout_s=state.get("call_timeout_s", 120.0) or None,
                   executor=state.get("executor", "local"), ray_address=state.get("ray_address"),
                   cpus_per_slot=state.get("cpus_per_slot", 1),
                   memory_host=state.get("memory_host"), memory_port=state.get("memory_port"))
    price = _price(state)
    if price is not None:
        spec.price_in, spec.price_out = price.input_per_1k, price.output_per_1k
    task = spec.task()
    run_dir = Path(state["run_dir"])
    memory = None
    if spec.memory:
        from autosci_graph.memory.chroma import ChromaMemory

        memory = ChromaMemory(spec.memory_path, task=task.name, host=spec.memory_host, port=spec.memory_port)
    executor = make_executor(spec.executor, task, run_dir, slots=spec.slots, sandbox=spec.sandbox,  # type: ignore[arg-type]
                             address=spec.ray_address, cpus_per_slot=spec.cpus_per_slot)
    ctx = LabContext(task=task, executor=executor, scientist=make_scientist(spec), memory=memory,
                     settings=spec.lab_settings(), poll_s=1.0)
    # No checkpointer of its own: the subgraph checkpoints into the server's, under this thread.
    graph = build_graph(spec.mode).compile(name=f"autosci-{spec.mode}")
    return _Run(spec, task, run_dir, ctx, graph)


def _started(run: _Run) -> None:
    get_stream_writer()({"type": "run_started", "run_id": run.spec.run_id, "run_dir": str(run.run_dir),
                         "task": run.task.name, "mode": run.spec.mode})


def _summary(run: _Run, final: dict[str, Any]) -> dict[str, Any]:
    from autosci_graph.graphs.state import Notebook
    from autosci_graph.runner import write_outputs

    outputs = write_outputs(final, run.task, run.run_dir)
    nb = Notebook(final, run.task)  # type: ignore[arg-type]
    keeps = sum(1 for e in nb.log if e.outcome == "keep" and e.kind != "baseline")
    get_stream_writer()({"type": "run_finished", "run_id": run.spec.run_id, "stop_reason": final.get("stop_reason"),
                         "metric": (final.get("champion") or {}).get("metric"), "report": str(outputs["report"])})
    return {"stop_reason": final.get("stop_reason"), "champion": final.get("champion"), "experiments": len(nb.log),
            "keeps": keeps, "usage": dict(final.get("usage") or {}), "outputs": {k: str(v) for k, v in outputs.items()}}


def lab(state: ServerState) -> dict[str, Any]:
    """Build the run's services, run the lab graph as a subgraph, write the report."""
    run = _services(state)
    _started(run)
    try:
        final = run.graph.invoke({"run_id": run.spec.run_id}, context=run.ctx, config=run.config)
    finally:
        run.ctx.executor.close()
    return _summary(run, final)


async def alab(state: ServerState) -> dict[str, Any]:
    """:func:`lab` on the server's event loop (``ainvoke``/``astream``, as ``langgraph dev`` runs
    it). A cancelled run (``runs.cancel``) cancels the executor at once: its experiments are killed
    (TERM to their process groups, KILL after the grace period) and left unfinished; the lab's
    checkpoint stays in the server's, so a new run on the thread with no input resumes it."""
    run = await asyncio.to_thread(_services, state)  # data preparation, memory, imports: off the loop
    _started(run)
    try:
        final = await run.graph.ainvoke({"run_id": run.spec.run_id}, context=run.ctx, config=run.config)
    except asyncio.CancelledError:
        run.ctx.executor.cancel()
        raise
    finally:
        # Shielded: a second cancel must not leave the kills half done.
        await asyncio.shield(asyncio.to_thread(run.ctx.executor.close))
    return await asyncio.to_thread(_summary, run, final)


def build_server_graph() -> StateGraph:
    """The uncompiled outer graph: JSON request in (:class:`LabRequest`), summary out (:class:`LabResult`).

    Example::

        graph = build_server_graph().compile(checkpointer=InMemorySaver())
        out = graph.invoke({"task_dir": "examples/gpt_bpb", "max_experiments": 6},
                           {"configurable": {"thread_id": "t1"}})
    """
    g = StateGraph(ServerState, input_schema=LabRequest, output_schema=LabResult)
    g.add_node("prepare", prepare)
    g.add_node("lab", RunnableLambda(lab, afunc=alab, name="lab"))  # invoke runs lab, ainvoke alab
    g.add_edge(START, "prepare")
    g.add_edge("prepare", "lab")
    g.add_edge("lab", END)
    return g


def make_graph() -> CompiledStateGraph:  # type: ignore[type-arg]
    """The graph ``langgraph.json`` serves; the server supplies the checkpointer and store."""
    return build_server_graph().compile(name=GRAPH_NAME)
