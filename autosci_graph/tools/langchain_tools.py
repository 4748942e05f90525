"""The executor as LangChain tools, so any LangChain agent can run experiments on a task.

Two tools, both bound to one task and one executor:

* ``describe_task`` (:class:`DescribeTaskTool`): the metric, its direction, the knobs with their
  bounds and defaults, the editable files, the fixed arguments;
* ``run_experiment`` (:class:`RunExperimentTool`): run one experiment (knob overrides, an optional
  unified diff, a seed) and return its result as JSON. A mistake in the arguments (an unknown
  knob, a value out of bounds, a diff that does not apply) comes back as a ``bad_change`` result
  the agent can read, never as an exception.

Example::

    from autosci_graph.tools.langchain_tools import make_experiment_tools
    with LocalExecutor(task, "runs/agent") as executor:
        tools = make_experiment_tools(task, executor)
        model.bind_tools(tools)

This module imports langchain-core; ``autosci_graph.tools`` itself does not.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from autosci_graph.state import Change, RunRequest
from autosci_graph.task import ResearchTask
from autosci_graph.tools.base import Executor

#: Curves can be long; an agent needs the trend, not every point.
MAX_CURVE_POINTS_SHOWN = 20


class RunExperimentInput(BaseModel):
    """Arguments of ``run_experiment``."""

    knobs: dict[str, float | int | bool | str] = Field(
        default_factory=dict, description="knob overrides, e.g. {\"lr\": 0.003}; unset knobs keep their defaults"
    )
    diff: str | None = Field(default=None, description="optional unified diff of the task's editable files")
    seed: int | None = Field(default=None, description="random seed (default: the task's first seed)")
    description: str = Field(default="", description="one line saying what this experiment tests")


class DescribeTaskInput(BaseModel):
    """``describe_task`` takes no arguments."""


def describe_task(task: ResearchTask) -> dict[str, Any]:
    """What an agent needs to know to propose experiments on ``task`` (JSON-able)."""
    return {
        "name": task.name,
        "description": task.description,
        "metric": {"name": task.metric.name, "direction": task.metric.direction, "target": task.metric.target},
        "knobs": {name: knob.model_dump(mode="json") for name, knob in task.knobs.items()},
        "editable_files": list(task.editable),
        "fixed_arguments": task.fixed,
        "seeds": list(task.seeds),
        "timeout_s": task.timeout,
    }


def result_summary(result_json: dict[str, Any]) -> dict[str, Any]:
    """A RunResult's JSON, trimmed for a model's context: the curve thinned, the workspace dropped."""
    out = dict(result_json)
    curve = out.get("curve") or []
    if len(curve) > MAX_CURVE_POINTS_SHOWN:
        step = len(curve) / MAX_CURVE_POINTS_SHOWN
        out["curve"] = [curve[int(i * step)] for i in range(MAX_CURVE_POINTS_SHOWN - 1)] + [curve[-1]]
    out.pop("workspace", None)
    return out


class RunExperimentTool(BaseTool):
    """LangChain tool: run one experiment of a task through an executor; returns result JSON."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "run_experiment"
    description: str = (
        "Run one training experiment with knob overrides and/or a unified diff and return its result "
        "as JSON (status: ok, timeout, crash, oom, diverged, no_metric or bad_change; the metric; the "
        "learning curve; the error and log tail on failure). Call describe_task first for the knobs."
    )
    args_schema: type[BaseModel] = RunExperimentInput
    task: ResearchTask
    executor: Executor

    def _run(
        self,
        knobs: dict[str, Any] | None = None,
        diff: str | None = None,
        seed: int | None = None,
        description: str = "",
        **_: Any,
    ) -> str:
        if seed is None:
            seed = self.task.seeds[0] if self.task.seeds else 0
        change = Change(knobs=dict(knobs or {}), diff=diff, description=description)
        request = RunRequest(experiment_id="tool-" + uuid.uuid4().hex[:12], change=change, seed=seed)
        (result,) = self.executor.run_many([request])
        return json.dumps(result_summary(result.to_state()))


class DescribeTaskTool(BaseTool):
    """LangChain tool: describe a task's metric, knobs and editable files as JSON."""

    name: str = "describe_task"
    description: str = (
        "Describe the research task: the metric to optimize and its direction, every knob with its "
        "type, bounds and default, the files a diff may edit, and the fixed run arguments."
    )
    args_schema: type[BaseModel] = DescribeTaskInput
    task: ResearchTask

    def _run(self, **_: Any) -> str:
        return json.dumps(describe_task(self.task))


def make_experiment_tools(task: ResearchTask, executor: Executor) -> list[BaseTool]:
    """Both tools for ``task``, running experiments on ``executor``."""
    return [DescribeTaskTool(task=task), RunExperimentTool(task=task, executor=executor)]
