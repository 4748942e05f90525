"""Run a lab (or the single-agent baseline) on a task folder with a run directory.

The wiring the CLI, the benchmarks and embedding apps share: executor, memory, scientist,
checkpointer and report. A run directory holds::

    run.json             what was asked (task, settings, model), so the run can be resumed
    checkpoints.sqlite   LangGraph's checkpoints (thread id = run id), unless they are in PostgreSQL
    experiments/<id>/    each experiment's workspace, diff, log and result
    results.tsv, progress.png, report.md
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autosci_graph.errors import AutosciError, ErrorCode, SettingsError
from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.lab.critique import CritiqueRules
from autosci_graph.lab.promotion import PromotionRule
from autosci_graph.task import ResearchTask, load_task

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
CHECKPOINTS = "checkpoints.sqlite"
RECURSION_LIMIT = 100_000


@dataclass
class RunSpec:
    """What a run was asked to do; saved as ``run.json`` so ``--resume`` rebuilds the same run."""

    task_dir: str
    run_id: str
    settings: dict[str, Any]
    mode: str = "lab"  # or "single"
    model: str | None = None
    critic_model: str | None = None
    base_url: str | None = None
    slots: int | None = None
    memory_path: str | None = None
    memory: bool = True
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: How runs are contained: ``"auto"`` (bubblewrap), ``"bwrap"`` or ``"none"`` (see tools.sandbox).
    sandbox: str = "auto"
    #: Seconds one LLM call may take before it counts as a failed turn (``None``: no limit).
    call_timeout_s: float | None = 120.0
    #: USD per 1k input / output tokens the cost budget counts (``scientists.prices``; ``None``: free).
    price_in: float | None = None
    price_out: float | None = None
    #: How answers are asked for (``"prompt"``, ``"json_schema"``, ``"function_calling"`` or
    #: ``"auto"``: per provider, see ``scientists.structured_output``) and their token bound.
    structured_output: str = "prompt"
    max_answer_tokens: int | None = None
    #: With json_schema or function_calling: a numeric knob moves by one of the steps the prompt shows (small models).
    step_menu: bool = False
    #: Where experiments run: ``"local"`` or ``"ray"`` (``ray_address``: the cluster; None: ``RAY_ADDRESS``).
    executor: str = "local"
    ray_address: str | None = None
    #: CPUs one CPU experiment gets (its threads; on Ray, its ``num_cpus``).
    cpus_per_slot: int = 1
    #: A ``postgresql://`` URL for the checkpoints (None: ``checkpoints.sqlite`` in the run directory).
    checkpoint: str | None = None
    #: A Chroma server for the memory, shared by several labs (None: the local folder ``memory_path``).
    memory_host: str | None = None
    memory_port: int | None = None
    created_at: float = dataclasses.field(default_factory=time.time)

    def save(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2), encoding="utf-8")
        tmp.replace(run_dir / RUN_FILE)

    @classmethod
    def load(cls, run_dir: Path) -> "RunSpec":
        path = run_dir / RUN_FILE
        if not path.is_file():
            raise SettingsError(f"{run_dir} is not a run directory (no {RUN_FILE}); give the folder `autosci run` created")
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise AutosciError(f"{path} is unreadable ({exc}); it was written by autosci run and should not be edited",
                               code=ErrorCode.CHECKPOINT) from None

    def lab_settings(self) -> LabSettings:
        raw = dict(self.settings)
        rules = CritiqueRules(**raw.pop("rules", {}))
        promotion = PromotionRule(**raw.pop("promotion", {}))
        return LabSettings(rules=rules, promotion=promotion, **raw)

    def task(self) -> ResearchTask:
        task = load_task(self.task_dir)
        return task.with_fixed(**self.fixed) if self.fixed else task


def settings_dict(settings: LabSettings) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def make_scientist(spec: RunSpec) -> Any:
    """The offline SearchScientist, or an LLMScientist when a model is named."""
    if spec.model is None:
        from autosci_graph.scientists.search import SearchScientist

        return SearchScientist()
    from autosci_graph.scientists.llm import LLMScientist

    return LLMScientist(spec.model, critic_model=spec.critic_model, base_url=spec.base_url,
                        call_timeout_s=spec.call_timeout_s, price_per_1k_input=spec.price_in,
                        price_per_1k_output=spec.price_out, structured_output=spec.structured_output,  # type: ignore[arg-type]
                        max_answer_tokens=spec.max_answer_tokens, step_menu=spec.step_menu)


@contextmanager
def open_checkpointer(run_dir: Path, url: str | None = None) -> Iterator[Any]:
    """A SQLite checkpointer on the run's database, closed on exit; a PostgreSQL one for a ``url``."""
    if url is not None:
        from autosci_graph.postgres_checkpoints import open_postgres

        with open_postgres(url) as saver:
            yield saver
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = run_dir / CHECKPOINTS
    try:
        conn = sqlite3.connect(str(path), check_same_thread=False)  # Send branches run in threads
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as exc:
        raise AutosciError(f"{path} is not a usable checkpoint database ({exc}); start a new run or restore the file",
                           code=ErrorCode.CHECKPOINT) from None
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def build_graph(mode: str) -> Any:
    if mode == "single":
        from autosci_graph.graphs.single_agent import build_single_agent_graph

        return build_single_agent_graph()
    from autosci_graph.graphs.lab import build_lab_graph

    return build_lab_graph()


@dataclass
class RunOutcome:
    state: dict[str, Any]
    run_dir: Path
    outputs: dict[str, Path]
    task: ResearchTask


def execute(
    spec: RunSpec,
    run_dir: Path,
    *,
    resume: bool = False,
    on_update: Callable[[str, Any], None] | None = None,
    scientist: Any = None,
    memory: Any = None,
    poll_s: float = 2.0,
    final_eval: bool = True,
    approver: Callable[[dict[str, Any]], Any] | None = None,
) -> RunOutcome:
    """Run (or resume) the graph of ``spec`` to its end, then write the report.

    ``on_update(mode, chunk)`` receives LangGraph stream chunks (``"values"`` states and
    ``"custom"`` progress events) for a live view. When the run is over and the task declares a
    held-out final evaluation, the champion is scored on it (``final_eval=False`` skips that).
    Under human approval (``LabSettings.human_approval``) the graph stops at each ``interrupt()``;
    ``approver(payload)`` gives the verdict it resumes with (``Command(resume=...)``), while the
    experiments in flight keep running. Without an approver a waiting run is an error.
    """
    from langgraph.types import Command

    from autosci_graph.tools.executors import make_executor

    task = spec.task()
    settings = spec.lab_settings()
    own_memory = memory is None and spec.memory
    if own_memory:
        from autosci_graph.memory.chroma import ChromaMemory

        memory = ChromaMemory(spec.memory_path, task=task.name, host=spec.memory_host, port=spec.memory_port)
    executor = make_executor(spec.executor, task, run_dir, slots=spec.slots, sandbox=spec.sandbox,  # type: ignore[arg-type]
                             address=spec.ray_address, cpus_per_slot=spec.cpus_per_slot)
    ctx = LabContext(task=task, executor=executor, scientist=scientist or make_scientist(spec), memory=memory,
                     settings=settings, poll_s=poll_s)
    config = {"configurable": {"thread_id": spec.run_id}, "recursion_limit": RECURSION_LIMIT,
              "run_name": f"autosci-{spec.mode}", "tags": ["autosci", spec.mode, task.name],
              "metadata": {"task": task.name, "run_id": spec.run_id}}
    try:
        with open_checkpointer(run_dir, spec.checkpoint) as saver, cancel_on_interrupt(executor):
            graph = build_graph(spec.mode).compile(checkpointer=saver)
            if resume:
                snapshot = graph.get_state(config)
                if not snapshot.values:
                    raise AutosciError(f"{run_dir}: no checkpoint for run {spec.run_id}; start it with `autosci run` instead",
                                       code=ErrorCode.CHECKPOINT)
                inputs: Any = None
            else:
                inputs = {"run_id": spec.run_id}
            state: dict[str, Any] = {}
            while True:
                for mode, chunk in graph.stream(inputs, config, context=ctx, stream_mode=["values", "custom"]):
                    if mode == "values":
                        state = chunk
                    if on_update is not None:
                        on_update(mode, chunk)
                waiting = graph.get_state(config).interrupts
                if not waiting:
                    break
                if approver is None:
                    raise SettingsError(f"run {spec.run_id} waits for a human verdict on a proposal; resume it with an "
                                        f"approver (autosci run --resume {run_dir} --approve)")
                inputs = Command(resume=approver(waiting[0].value))
            state = graph.get_state(config).values or state
    finally:
        executor.close()
        if own_memory:
            memory.close()  # releases the memory folder's writer lock for the next run
    if final_eval and task.final_eval is not None and state.get("stop_reason"):
        final_evaluation(state, task, run_dir, sandbox=getattr(executor, "sandbox", None))
    outputs = write_outputs(state, task, run_dir)
    return RunOutcome(state=state, run_dir=run_dir, outputs=outputs, task=task)


@contextmanager
def cancel_on_interrupt(executor: Any) -> Iterator[None]:
    """While a lab runs in the main thread, Ctrl-C (SIGINT) first cancels ``executor``: its
    experiments are killed (TERM to their process groups, KILL after the grace period) and left
    unfinished, so ``--resume`` runs them again. Then ``KeyboardInterrupt`` is raised as usual and
    the graph stops; its checkpoint holds every step that ended before. Outside the main thread,
    or when the caller has its own SIGINT handler, nothing is changed."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def on_interrupt(signum: int, frame: Any) -> None:
        # In a thread: the handler runs between two bytecodes of the main thread, which may hold
        # the executor's lock; the kills themselves run in threads of their own.
        threading.Thread(target=executor.cancel, name="autosci-cancel", daemon=True).start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


FINAL_EVAL_FILE = "final_eval.json"


def final_evaluation(state: dict[str, Any], task: ResearchTask, run_dir: Path, sandbox: Any = None) -> dict[str, Any] | None:
    """Score the champion on the task's held-out data (only the harness can) and keep the result
    in ``final_eval.json`` beside the report. Skipped when the champion is unknown."""
    from autosci_graph.final_eval import run_final_eval
    from autosci_graph.state import Change

    champion = state.get("champion") or {}
    if champion.get("metric") is None:
        return None
    seeds = champion.get("seeds") or [task.seeds[0] if task.seeds else 0]
    result = run_final_eval(task, Change(knobs=champion.get("config", {}), diff=champion.get("diff")),
                            work_dir=run_dir, seed=int(seeds[0]), sandbox=sandbox)
    payload = result.to_state()
    tmp = run_dir / (FINAL_EVAL_FILE + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    tmp.replace(run_dir / FINAL_EVAL_FILE)
    return payload


def with_final_eval(state: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The state with the held-out result of its run directory (if any) under ``final_eval``."""
    final = run_dir / FINAL_EVAL_FILE
    if not final.is_file():
        return state
    return {**state, "final_eval": json.loads(final.read_text(encoding="utf-8"))}


def write_outputs(state: dict[str, Any], task: ResearchTask, run_dir: Path) -> dict[str, Path]:
    from autosci_graph.reports import summarize, write_report

    return write_report(summarize(with_final_eval(state, run_dir), task), run_dir)  # type: ignore[arg-type]


def load_state(run_dir: Path) -> tuple[RunSpec, dict[str, Any]]:
    """The latest checkpointed state of a run directory."""
    spec = RunSpec.load(run_dir)
    with open_checkpointer(run_dir, spec.checkpoint) as saver:
        graph = build_graph(spec.mode).compile(checkpointer=saver)
        values = graph.get_state({"configurable": {"thread_id": spec.run_id}}).values
    if not values:
        raise AutosciError(f"{run_dir}: the checkpoint holds no state for run {spec.run_id}", code=ErrorCode.CHECKPOINT)
    return spec, dict(values)
