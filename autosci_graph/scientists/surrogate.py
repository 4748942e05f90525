"""A Gaussian-process surrogate of the metric, fitted to every result so far with the lab's GP
(:func:`autosci_graph.lab.posterior.fit_gp`).

The offline scientist proposes where the surrogate expects improvement and its critic rejects
what the surrogate confidently predicts to lose; the same model serves both, so proposal and
review agree. Configurations are encoded in the unit cube of the task's knobs (log knobs in log
space, categoricals one-hot), targets are *gains* (higher is better whatever the metric's
direction). Failed runs (crashes, divergence) enter as the worst value seen, so the model learns
to avoid a divergence cliff. A Matérn kernel with one length scale per knob learns which knobs
matter (irrelevant knobs get long length scales); a white-noise term absorbs seed noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from autosci_graph.lab.posterior import GPFit, code_markers, encode, fit_gp
from autosci_graph.state import Champion, CodeIdea, ExperimentEntry
from autosci_graph.task import KnobValue, ResearchTask

#: Fewer successful results than this and the surrogate is not fitted (its guesses would be noise).
MIN_POINTS = 4


@dataclass
class Surrogate:
    """A fitted surrogate: predicted gain (vs the champion) and its uncertainty per configuration."""

    task: ResearchTask
    model: GPFit
    baseline: float  # the champion's metric, in gain units the predictions are relative to
    #: The surrogate's (noise-free) value at the champion: expected improvement is measured from
    #: it, since a proposal has to beat the champion, not the luckiest run ever seen.
    incumbent: float
    markers: list[str]

    @classmethod
    def fit(cls, task: ResearchTask, entries: Sequence[ExperimentEntry], champion: Champion,
            seed: int = 0, ideas: Sequence[CodeIdea] = ()) -> "Surrogate | None":
        """Fit on every run so far; ``None`` with too few results to say anything."""
        champion_metric = champion.metric
        if champion_metric is None or not task.knobs:
            return None
        sign = -1.0 if task.metric.minimize else 1.0
        markers = code_markers(ideas)
        ok = [(e.result.change, float(e.result.metric)) for e in entries
              if e.result.ok and e.result.metric is not None and math.isfinite(e.result.metric)]
        if len(ok) < MIN_POINTS:
            return None
        worst = min(sign * m for _, m in ok)
        spread = max(sign * m for _, m in ok) - worst
        failed = [e.result.change for e in entries
                  if e.result.status in ("diverged", "crash", "oom", "timeout", "no_metric") and e.result.change.knobs]
        xs = [encode(task, {**task.default_config(), **c.knobs}, c.diff, markers) for c, _ in ok] + \
             [encode(task, {**task.default_config(), **c.knobs}, c.diff, markers) for c in failed]
        ys = [sign * m for _, m in ok] + [worst - 0.5 * max(spread, 1e-9)] * len(failed)
        model = fit_gp(tuple(map(tuple, xs)), tuple(ys), seed)
        at_champion, _ = model.predict(np.asarray([encode(task, {**task.default_config(), **champion.config}, champion.diff, markers)]))
        return cls(task=task, model=model, baseline=sign * champion_metric, incumbent=float(at_champion[0]), markers=markers)

    def predict(self, configs: Sequence[Mapping[str, KnobValue]], diffs: Sequence[str | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predicted gain over the champion and its standard deviation, per configuration (and
        the code it runs with: ``diffs``, the full change of each)."""
        codes = list(diffs) if diffs is not None else [None] * len(configs)
        x = np.asarray([encode(self.task, {**self.task.default_config(), **c}, d, self.markers) for c, d in zip(configs, codes)])
        mean, std = self.model.predict(x)
        return mean - self.baseline, std

    def expected_improvement(self, configs: Sequence[Mapping[str, KnobValue]], diffs: Sequence[str | None] | None = None) -> np.ndarray:
        """Expected improvement over the surrogate's value at the champion."""
        from scipy.stats import norm

        gain, std = self.predict(configs, diffs)
        best = self.incumbent - self.baseline
        std = np.maximum(std, 1e-12)
        z = (gain - best) / std
        # A vanishing tie-break by the predicted gain, for when every EI underflows to zero.
        return (gain - best) * norm.cdf(z) + std * norm.pdf(z) + 1e-9 * gain
