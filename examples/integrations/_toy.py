"""A toy research task shared by the integration examples: fast, in-process, with a known optimum.

A stand-in for a real training script so each example runs in seconds. The loss is a bowl in
(log lr, log width) with seed noise; learning rates above 3e-2 diverge (NaN), as real ones do.
Swap in ``load_task("examples/gpt_bpb")`` and a ``LocalExecutor`` for the real thing.
"""

from __future__ import annotations

import hashlib
import math
import random

from autosci_graph import Change, FunctionExecutor, LabContext, LabSettings, ResearchTask, SearchScientist
from autosci_graph.memory.base import ExperimentMemory


def toy_task() -> ResearchTask:
    """Two knobs; optimum lr=1e-2, width=128 (loss 1.0)."""
    return ResearchTask(
        name="toy", root=".", command=("(in-process)",), metric={"name": "loss", "direction": "minimize"},
        seeds=(0, 1, 2, 3),
        knobs={"lr": {"type": "float", "low": 1e-4, "high": 1.0, "default": 1e-3, "log": True,
                      "description": "learning rate"},
               "width": {"type": "int", "low": 8, "high": 512, "default": 32, "log": True,
                         "description": "model width"}},
    )


def toy_loss(change: Change, seed: int) -> float:
    """One "training run": deterministic for a (configuration, seed) pair."""
    lr, width = float(change.knobs["lr"]), float(change.knobs["width"])
    if lr > 3e-2:
        return math.nan  # diverged
    key = repr((seed, sorted(change.knobs.items()))).encode()
    noise = random.Random(int(hashlib.sha256(key).hexdigest()[:12], 16)).gauss(0.0, 0.01)
    return 1.0 + (math.log10(lr) + 2) ** 2 + 0.05 * (math.log2(width) - 7) ** 2 + noise


def toy_context(*, max_experiments: int = 10, n_teams: int = 2, memory: ExperimentMemory | None = None) -> LabContext:
    """Services and settings for a short lab on the toy task (offline scientist, two slots).
    Synchronous: results come back in submission order, so the lab's decisions, and what the
    examples print, depend on the seed alone, never on which thread finished first."""
    return LabContext(
        task=toy_task(), executor=FunctionExecutor(toy_loss, metric_name="loss", slots=2, synchronous=True),
        scientist=SearchScientist(), memory=memory, poll_s=0.05,
        settings=LabSettings(n_teams=n_teams, max_experiments=max_experiments, stop_after_no_keep=None),
    )
