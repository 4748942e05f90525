"""A small lab on a real model (``llama-server`` + Qwen2.5-Coder-0.5B-Instruct), shared by the
``real_model`` test and ``bench/bench_real_model.py``: one quick task, one team, one proposal per
turn, and the figures a run gives (valid answers per role, seconds per call, experiments from
model proposals), read from the lab's state and from what the server answered."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver

from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.scientists.llm import LLMScientist
from autosci_graph.scientists.prompts import PromptSettings
from autosci_graph.state import Change
from autosci_graph.task import ResearchTask
from autosci_graph.tools.inprocess import FunctionExecutor
from tests.support.local_model import MODEL_ALIAS
from tests.support.recording_proxy import Exchange

ROLES = {"organize": "organizing the lab's teams", "propose": "an experimenter on team", "critique": "reviewing a proposal"}
REPAIR = "Your answer was rejected:"
#: Bounded answers: unbounded, a small model loops inside a list or string until the token limit.
MAX_TOKENS = 256


def quick_task() -> ResearchTask:
    """Two knobs of a smooth loss (lr's optimum at 1e-2, width's at 128) computed in-process."""
    return ResearchTask(
        name="real-model-quadratic", root=Path("."), command=("unused",), metric={"name": "loss"}, seeds=(0, 1, 2), timeout=10,
        description="a small model's training loss; lower is better",
        knobs={"lr": {"type": "float", "low": 1e-4, "high": 1.0, "default": 1e-3, "log": True},
               "width": {"type": "int", "low": 8, "high": 512, "default": 32, "log": True}},
    )


def quick_loss(change: Change, seed: int) -> float:
    k = change.knobs
    return (math.log10(float(k["lr"])) + 2) ** 2 + 0.3 * (math.log2(int(k["width"]) / 128)) ** 2 / 4 + 0.01 * seed


def run_real_lab(base_url: str, *, max_experiments: int, deadline_s: float, seed: int = 0,
                 max_tokens: int | None = None) -> dict[str, Any]:
    """One lab run on the model at ``base_url``; returns the final state. ``max_tokens``: the
    lab's token budget, a stop that, unlike the deadline, does not depend on the machine's speed."""
    model = ChatOpenAI(model=MODEL_ALIAS, base_url=base_url, api_key="not-needed", max_retries=0,
                       max_tokens=MAX_TOKENS, temperature=0.7, seed=seed)
    scientist = LLMScientist(model, structured_output="json_schema", step_menu=True, max_repairs=1, call_timeout_s=240,
                             prompt_settings=PromptSettings(log_window=8, dead_end_window=4, recall_window=2))
    # The deadline ends the run: a 0.5B model fails many rounds in a row (measured: 10 of 11
    # critiques too generic), which is what the test is about, so the failed-round stop is far off.
    settings = LabSettings(n_teams=1, proposals_per_turn=1, baseline_seeds=2, max_experiments=max_experiments,
                           stop_after_no_keep=None, max_failed_rounds=100, retry_wait_s=0.0, max_idle_rounds=100,
                           max_champion_seeds=2, deadline=time.time() + deadline_s, seed=seed, max_tokens=max_tokens)
    ctx = LabContext(task=quick_task(), executor=FunctionExecutor(quick_loss, metric_name="loss", slots=1),
                     scientist=scientist, poll_s=0.2, settings=settings)
    graph = build_lab_graph().compile(checkpointer=InMemorySaver())
    return graph.invoke({"run_id": "real"}, context=ctx, config={"configurable": {"thread_id": "real"}, "recursion_limit": 10_000})


def role_of(exchange: Exchange) -> str:
    return next(role for role, marker in ROLES.items() if marker in exchange.system)


@dataclass(frozen=True)
class RoleFigures:
    answers: int
    valid: int
    seconds: float

    @property
    def valid_rate(self) -> float:
        return self.valid / self.answers if self.answers else float("nan")

    @property
    def seconds_per_call(self) -> float:
        return self.seconds / self.answers if self.answers else float("nan")


def role_figures(final: dict[str, Any], exchanges: list[Exchange]) -> dict[str, RoleFigures]:
    """Per role: answers the server gave, how many the lab accepted, seconds spent. An answer was
    invalid when the scientist sent it back for repair (the next request ends with the repair
    message) or dropped it after the last attempt (a ``dropped_answer`` event)."""
    out: dict[str, RoleFigures] = {}
    drops = [e for e in final.get("events", []) if e["type"] == "dropped_answer"]
    for role in ROLES:
        mine = [x for x in exchanges if role_of(x) == role and x.status == 200]
        repairs = sum(1 for x in mine if str(x.request["messages"][-1].get("content", "")).startswith(REPAIR))
        dropped = sum(1 for e in drops if e["reason"].startswith(f"{role}: still invalid"))
        out[role] = RoleFigures(answers=len(mine), valid=len(mine) - repairs - dropped,
                                seconds=sum(x.seconds for x in mine))
    return out


def experiments_from_model(final: dict[str, Any]) -> list[dict[str, Any]]:
    """Explorations that ran, each written by an experimenter (not housekeeping or the baseline)."""
    return [s for s in final.get("submitted", []) if s["kind"] == "explore" and s["proposal"]["author"].startswith("experimenter")]
