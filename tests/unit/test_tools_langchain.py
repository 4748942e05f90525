"""The LangChain tools, on an in-memory executor (no subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from autosci_graph.state import RunRequest, RunResult
from autosci_graph.task import FloatKnob, Metric, ResearchTask
from autosci_graph.tools.base import Executor
from autosci_graph.tools.langchain_tools import make_experiment_tools


class EchoExecutor(Executor):
    """Finishes every request at once: the metric is the ``lr`` knob, unknown knobs are bad changes."""

    def __init__(self, task: ResearchTask) -> None:
        self.task = task
        self.results: dict[str, RunResult] = {}

    @property
    def slots(self) -> int:
        return 1

    def submit(self, request: RunRequest) -> None:
        try:
            knobs = self.task.validate_overrides(request.change.knobs)
        except ValueError as exc:
            self.results[request.experiment_id] = RunResult(experiment_id=request.experiment_id, status="bad_change", change=request.change, seed=request.seed, metric_name="m", error=str(exc))
            return
        curve = [{"step": float(i), "loss": 1.0 / (i + 1)} for i in range(100)]
        self.results[request.experiment_id] = RunResult(experiment_id=request.experiment_id, status="ok", change=request.change, seed=request.seed, metric_name="m", metric=float(knobs.get("lr", 0.1)), curve=curve)

    def wait(self, experiment_ids: Iterable[str], timeout: float | None = None) -> list[RunResult]:
        return [self.results[e] for e in experiment_ids]

    def close(self) -> None:
        pass


TASK = ResearchTask(name="t", root=Path("/tmp"), command=("x",), metric=Metric(name="m"), seeds=(5,), knobs={"lr": FloatKnob(low=1e-4, high=1.0, default=0.1, log=True)}, fixed={"time_budget": 5})


def test_describe_task_lists_metric_and_knobs() -> None:
    describe, _ = make_experiment_tools(TASK, EchoExecutor(TASK))
    info = json.loads(describe.invoke({}))
    assert info["metric"] == {"name": "m", "direction": "minimize", "target": None}
    assert info["knobs"]["lr"]["low"] == 1e-4 and info["knobs"]["lr"]["log"] is True
    assert info["fixed_arguments"] == {"time_budget": 5}


def test_run_experiment_returns_the_result_json() -> None:
    _, run = make_experiment_tools(TASK, EchoExecutor(TASK))
    out = json.loads(run.invoke({"knobs": {"lr": 0.003}, "description": "higher lr"}))
    assert out["status"] == "ok" and out["metric"] == 0.003 and out["seed"] == 5
    assert len(out["curve"]) == 20 and out["curve"][-1]["step"] == 99.0  # thinned for the model's context
    bad = json.loads(run.invoke({"knobs": {"depth": 3}}))
    assert bad["status"] == "bad_change" and "unknown knob" in bad["error"]


def test_tool_schemas_are_pydantic() -> None:
    _, run = make_experiment_tools(TASK, EchoExecutor(TASK))
    schema_model = run.tool_call_schema
    assert isinstance(schema_model, type) and issubclass(schema_model, BaseModel)
    schema = schema_model.model_json_schema()
    assert set(schema["properties"]) == {"knobs", "diff", "seed", "description"}


def test_tools_package_import_is_light() -> None:
    code = "import sys, autosci_graph.tools, autosci_graph.tools.local; print(sorted(m for m in sys.modules if m.startswith(('torch', 'langchain'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
