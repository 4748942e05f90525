"""Evidence pooled through a model: a Gaussian process fitted to every successful run.

A configuration's own seeds are not the only evidence about it. On a task whose metric is a
smooth function of its knobs, every run near a configuration says something about it too, and a
lab that searches locally measures many configurations near its best ones. The posterior of a GP
fitted to all runs pools that evidence: its mean at a configuration is a denoised estimate built
from the configuration's seeds *and* its neighbours', and the posterior of the difference of two
configurations, ``f(a) − f(b)``, has a standard deviation that shrinks with every nearby run,
not only with the configuration's own repeats.

The lab uses it twice (:mod:`autosci_graph.lab.lead`, :mod:`autosci_graph.lab.promotion`):

* **the lead** is the measured configuration with the best posterior mean, not the best mean over
  its own seeds: a single lucky seed raises a mean by its full noise, but a posterior mean only by
  the part its neighbours do not contradict, so teams step from where the evidence is, not from
  the luckiest run;
* **promotion** may use ``z = E[f(a) − f(b)] / sd[f(a) − f(b)]`` as the candidate's evidence over
  the champion (and over the default), against the same bars as the seeds' t statistic.

The model: a Matérn-5/2 kernel with one length scale per knob (irrelevant knobs get long ones,
so they pool freely along them) times a constant, plus a white-noise term fitted from the data
(its floor comes from the repeats: with no spread between seeds of one configuration it is the
seeds' noise the model has to explain). Configurations are encoded in the unit cube of the
task's knobs (log knobs in log space, categoricals one-hot); code enters as one 0/1 feature per
task idea (is it in the code) and one per distinct code state otherwise, so two different diffs
are never mistaken for one configuration. Failed runs are left out: they have no metric to pool.
A pure function of the runs and the seed, cached, so every reader in one step shares one fit.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autosci_graph.lab.knowledge import noise_estimate
from autosci_graph.state import Change, CodeIdea, ExperimentEntry
from autosci_graph.task import CategoricalKnob, KnobValue, ResearchTask, unit

# The fit's convergence chatter on tiny data sets (a length scale at its bound, L-BFGS stopping
# early) says nothing to a user: silenced for sklearn's GP modules only, once at import.
# Not ``catch_warnings`` around each fit: that swaps the process-wide filter list, and fits in
# the lab's parallel branches restored each other's filters and the warnings came through.
warnings.filterwarnings("ignore", module=r"sklearn\.gaussian_process\.")

#: Fewer successful runs than this and no model is fitted: the seeds alone are the evidence.
MIN_RUNS = 6


def code_markers(ideas: Sequence[CodeIdea]) -> list[str]:
    """One line each idea adds, to tell from a run's diff whether the idea is in its code."""
    out = []
    for idea in ideas:
        added = [ln[1:].strip() for ln in idea.diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
        out.append(max(added, key=len) if added else idea.name)
    return out


def encode(task: ResearchTask, config: Mapping[str, KnobValue], diff: str | None = None, markers: Sequence[str] = ()) -> list[float]:
    """A configuration in the unit cube, plus one 0/1 feature per code idea (is it in the code)."""
    row: list[float] = [1.0 if diff and m in diff else 0.0 for m in markers]
    for name, knob in task.knobs.items():
        value = config.get(name, knob.default)
        if isinstance(knob, CategoricalKnob):
            row.extend(1.0 if value == c else 0.0 for c in knob.choices)
        else:
            row.append(unit(knob, value))
    return row


def _code_state(diff: str | None) -> str:
    return (diff or "").strip()


def _row(task: ResearchTask, markers: Sequence[str], codes: Sequence[str], change: Change) -> list[float]:
    """A change's features: one per distinct code state, then :func:`encode`'s."""
    state = _code_state(change.diff)
    return [1.0 if state == c else 0.0 for c in codes] + encode(task, {**task.default_config(), **change.knobs}, change.diff, markers)


@dataclass(frozen=True)
class GPFit:
    """A fitted scikit-learn GP on standardized targets: ``y = offset + scale · ŷ``."""

    model: Any
    offset: float
    scale: float

    def predict(self, x: Any) -> tuple[Any, Any]:
        """Predicted mean and standard deviation of a new *run* at each row of ``x`` (noise included)."""
        mean, std = self.model.predict(x, return_std=True)
        return self.offset + self.scale * mean, self.scale * std


@functools.lru_cache(maxsize=32)
def fit_gp(xs: tuple[tuple[float, ...], ...], ys: tuple[float, ...], seed: int = 0, noise_floor: float | None = None) -> GPFit:
    """The GP both the lab's evidence and the offline scientist's surrogate use: a Matérn-5/2
    kernel with one length scale per feature times a constant, plus white noise (fitted, and no
    lower than ``noise_floor`` when one is given, in the targets' units). A pure function of its
    data and seed, cached: a step's lead, judges, proposer and critics, which read the same runs,
    share one fit."""
    import numpy as np
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    y = np.asarray(ys)
    offset, scale = float(y.mean()), float(y.std()) or 1.0
    dims = len(xs[0])
    if noise_floor is None:
        white = WhiteKernel(noise_level=1e-2, noise_level_bounds=(1e-8, 1.0))
    else:
        level = max((noise_floor / scale) ** 2, 1e-8)
        white = WhiteKernel(noise_level=max(level, 1e-2), noise_level_bounds=(level, max(1.0, 2.0 * level)))
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(length_scale=[0.5] * dims, length_scale_bounds=(0.05, 20.0), nu=2.5) \
        + white
    model = GaussianProcessRegressor(kernel=kernel, normalize_y=False, n_restarts_optimizer=1, random_state=seed)
    model.fit(np.asarray(xs), (y - offset) / scale)
    return GPFit(model, offset, scale)


@dataclass(frozen=True)
class Posterior:
    """The GP posterior over the metric, in *gain* units (higher is better whatever the
    metric's direction)."""

    task: ResearchTask
    fitted: GPFit
    markers: tuple[str, ...]
    #: Distinct code states seen, each its own 0/1 feature (beyond the ideas' markers).
    codes: tuple[str, ...]

    @classmethod
    def fit(cls, task: ResearchTask, entries: Sequence[ExperimentEntry], *, ideas: Sequence[CodeIdea] = (),
            noise_floor: bool = False) -> "Posterior | None":
        """Fit on every successful run; ``None`` with fewer than :data:`MIN_RUNS` of them or no knobs.
        ``noise_floor``: the white noise may not fall below the 90% upper confidence bound of the
        σ the repeats measure (for a claim; the lead's model fits its noise freely)."""
        ok = [e.result for e in entries if e.result.ok and e.result.metric is not None and math.isfinite(e.result.metric)]
        if len(ok) < MIN_RUNS or not task.knobs:
            return None
        sign = -1.0 if task.metric.minimize else 1.0
        markers = tuple(code_markers(ideas))
        states = tuple(sorted({_code_state(r.change.diff) for r in ok}))
        codes = states if len(states) > 1 else ()
        xs = tuple(tuple(_row(task, markers, codes, r.change)) for r in ok)
        ys = tuple(sign * float(r.metric) for r in ok)  # type: ignore[arg-type]
        floor = noise_estimate(task, entries, upper=True)[0] if noise_floor else None
        # The restarts' seed is fixed: the lab's decisions are a function of its results alone.
        return cls(task=task, fitted=fit_gp(xs, ys, 0, floor), markers=markers, codes=codes)

    def _latent(self, changes: Sequence[Change]) -> tuple[Any, Any]:
        """Posterior mean and covariance of the noise-free metric (gain units) at ``changes``:
        the fitted kernel without its white-noise term, since the claim is about the
        configurations, not about their next runs."""
        import numpy as np
        from scipy.linalg import solve_triangular

        gp = self.fitted.model
        signal = gp.kernel_.k1
        x = np.asarray([_row(self.task, self.markers, self.codes, c) for c in changes])
        k_star = signal(x, gp.X_train_)
        mean = k_star @ gp.alpha_
        v = solve_triangular(gp.L_, k_star.T, lower=True)
        cov = signal(x) - v.T @ v
        return self.fitted.offset + self.fitted.scale * mean, self.fitted.scale ** 2 * cov

    def means(self, changes: Sequence[Change]) -> list[float]:
        """The posterior mean gain at each change."""
        mean, _ = self._latent(changes)
        return [float(v) for v in mean]

    def difference(self, a: Change, b: Change) -> tuple[float, float]:
        """Posterior mean and standard deviation of ``gain(a) − gain(b)``."""
        mean, cov = self._latent([a, b])
        var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
        return float(mean[0] - mean[1]), math.sqrt(max(var, 0.0))
