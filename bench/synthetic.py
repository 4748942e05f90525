"""A synthetic research task with a known optimum and realistic seed noise, for benchmarks.

Six knobs shaped like a training run's (a log-scale learning rate with a sharp optimum, width and
depth with diminishing returns, regularization, batch size, an activation choice). The "true"
metric is known in closed form, so benchmarks can tell a real improvement from a lucky seed.
"""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path

from autosci_graph.state import Change
from autosci_graph.task import ResearchTask

#: Seed-to-seed noise, about what step-limited CPU runs of the GPT example show relative to
#: the gaps between configurations.
NOISE_SIGMA = 0.03


def synthetic_task(seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)) -> ResearchTask:
    return ResearchTask(
        name="synthetic", root=Path("."), command=("(in-process)",), metric={"name": "loss", "direction": "minimize"},
        seeds=seeds,
        knobs={
            "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "default": 3e-4, "log": True},
            "width": {"type": "int", "low": 16, "high": 1024, "default": 64, "log": True},
            "depth": {"type": "int", "low": 1, "high": 12, "default": 2},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5, "default": 0.2},
            "batch_size": {"type": "int", "low": 8, "high": 512, "default": 32, "log": True},
            "activation": {"type": "categorical", "choices": ["relu", "gelu", "tanh"], "default": "tanh"},
        },
    )


def true_loss(knobs: dict[str, object]) -> float:
    """The noise-free metric; its minimum is 1.0 at lr=3e-3, width=512, depth=6, dropout=0.05,
    batch_size=128, activation=gelu."""
    lr = math.log10(float(knobs["lr"])) - math.log10(3e-3)
    width = math.log2(float(knobs["width"])) - 9
    depth = float(knobs["depth"]) - 6
    drop = float(knobs["dropout"]) - 0.05
    batch = math.log2(float(knobs["batch_size"])) - 7
    act = {"gelu": 0.0, "relu": 0.05, "tanh": 0.15}[str(knobs["activation"])]
    return 1.0 + 0.5 * lr**2 + 0.04 * width**2 + 0.01 * depth**2 + 1.5 * drop**2 + 0.02 * batch**2 + act


def noisy_loss(change: Change, seed: int, *, sigma: float = NOISE_SIGMA, salt: str = "") -> float:
    """``true_loss`` plus Gaussian noise fixed by (seed, configuration, salt): a repeat of the same
    run gives the same number, another seed a different one."""
    key = repr((seed, sorted(change.knobs.items()), salt)).encode()
    rng = random.Random(int(hashlib.sha256(key).hexdigest()[:16], 16))
    return true_loss(change.knobs) + rng.gauss(0.0, sigma)
