"""Promotion by pooled evidence: when a candidate replaces the champion. Plain arithmetic.

The rule, for a candidate measured on ``n`` seeds against a champion measured on ``m`` seeds:

* σ is the run-to-run noise pooled over *every* configuration run on two or more seeds
  (``σ² = Σ_groups Σ (x - x̄_group)² / dof``, ``dof = Σ_groups (n_group - 1)``);
* the evidence is the whole candidate, not its latest run: ``d = gain(mean(candidate), mean(champion))``
  with standard error ``se = σ·√(1/n + 1/m)``, and ``z = d / se``;
* **promote** when ``n ≥ min_seeds`` and ``z`` exceeds the t-quantile with the tail of
  ``bar_sigmas`` normal σ at ``dof`` degrees of freedom (σ estimated from few repeats raises the bar);
* **reject** when ``z`` falls below a futility bound (``drop_first_below`` after one seed,
  ``drop_below`` after more) or the candidate has had ``max_seeds`` seeds;
* otherwise the verdict is **open**: the next seed goes to this candidate (on a seed the champion
  has, so the comparison is paired), and the champion gets a seed when it has fewer than the candidate.

Because the bar is fixed and every look re-uses all seeds, this is a group-sequential test with a
futility stop: a true gain of 1σ keeps growing ``z`` by about √2 per doubling of seeds until it
clears the bar, while a lucky first seed regresses toward zero on the next ones. When σ is exactly
0 (identical repeats: a deterministic task) one run decides: any gain promotes, none rejects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from autosci_graph.lab.stats import t_critical
from autosci_graph.task import Metric

Verdict = Literal["promote", "reject", "open"]


@dataclass(frozen=True)
class PromotionRule:
    """Thresholds of the pooled-evidence test (``LabSettings.promotion``)."""

    #: Promote when z clears the t-quantile with the tail of this many normal σ. Measured on pure
    #: noise (bench/bench_efficacy.py) for a low false-promotion rate per 40-experiment run.
    bar_sigmas: float = 2.75
    #: A first run whose z is at or below this is rejected at once (it did not beat the champion).
    drop_first_below: float = 0.0
    #: After two or more seeds, a candidate whose z is below this is rejected: too far to reach the
    #: bar. Higher saves seeds on noise; lower keeps small real gains (1σ) alive long enough.
    drop_below: float = 0.5
    #: Seeds a candidate needs before it may promote, unless repeats are identical (σ = 0).
    min_seeds: int = 2
    #: Seeds after which a still-open candidate is rejected.
    max_seeds: int = 10


def pooled_noise(groups: Iterable[Sequence[float]]) -> tuple[float | None, int]:
    """``(σ, dof)`` pooled over groups of repeat measurements of one configuration each;
    ``(None, 0)`` when no group has two values."""
    ss, dof = 0.0, 0
    for values in groups:
        vals = [v for v in values if math.isfinite(v)]
        if len(vals) >= 2:
            mean = sum(vals) / len(vals)
            ss += sum((v - mean) ** 2 for v in vals)
            dof += len(vals) - 1
    if dof == 0:
        return None, 0
    return math.sqrt(ss / dof), dof


def is_deterministic(sigma: float | None, dof: int) -> bool:
    """Repeats so far were identical: σ is exactly zero (up to float rounding)."""
    return sigma is not None and dof >= 1 and sigma <= 1e-12


@dataclass(frozen=True)
class Evidence:
    """All of a candidate's seeds against the champion's mean."""

    n: int
    m: int
    gain: float
    se: float | None
    z: float
    bar: float

    def describe(self) -> str:
        if self.se is None:
            return f"gain {self.gain:+.4g} on {self.n} seed(s); noise not measured yet"
        return f"gain {self.gain:+.4g} on {self.n} seed(s) vs {self.m}, z = {self.z:+.2f} (bar {self.bar:.2f})"


@dataclass(frozen=True)
class Judgement:
    """A verdict on a candidate, with what to run next when it is open."""

    verdict: Verdict
    evidence: Evidence
    reason: str
    #: For an open verdict: the champion needs another seed before the comparison is balanced.
    champion_seed_wanted: bool = False


def evidence(metric: Metric, champion: Sequence[float], candidate: Sequence[float], sigma: float | None, dof: int,
             rule: PromotionRule) -> Evidence:
    """The candidate's evidence against the champion."""
    n, m = len(candidate), len(champion)
    gain = metric.gain(sum(candidate) / n, sum(champion) / m)
    if sigma is None:
        return Evidence(n, m, gain, None, 0.0, math.inf)
    se = sigma * math.sqrt(1.0 / n + 1.0 / m)
    if se <= 0:
        z = math.inf if gain > 1e-12 * max(1.0, abs(sum(champion) / m)) else -math.inf
    else:
        z = gain / se
    return Evidence(n, m, gain, se, z, t_critical(rule.bar_sigmas, dof))


def judge(metric: Metric, champion: Sequence[float], candidate: Sequence[float], sigma: float | None, dof: int,
          rule: PromotionRule, *, screened: bool = False) -> Judgement:
    """The verdict on a candidate from all its seeds. ``screened``: it already passed the
    first-run screen (a rebased candidate carries its earlier evidence as a prior), so a single
    disappointing run on the new champion does not reject it."""
    if not candidate:
        raise ValueError("a candidate needs at least one successful run to be judged")
    ev = evidence(metric, champion, candidate, sigma, dof, rule)
    if is_deterministic(sigma, dof):
        if ev.gain > 0 and ev.z > 0:
            return Judgement("promote", ev, f"gain {ev.gain:+.4g}; repeats are identical (σ = 0), so one run decides")
        return Judgement("reject", ev, f"gain {ev.gain:+.4g}: no improvement, and repeats are identical (σ = 0)")
    if ev.se is None:
        if ev.gain <= 0:
            return Judgement("reject", ev, f"gain {ev.gain:+.4g}: no improvement over the champion")
        return Judgement("open", ev, ev.describe() + "; another seed measures the noise")
    if ev.n >= rule.min_seeds and ev.z > ev.bar:
        return Judgement("promote", ev, ev.describe() + f": clears the {rule.bar_sigmas:g}σ bar")
    if ev.n == 1:
        floor = -math.inf if screened else rule.drop_first_below
    else:
        floor = rule.drop_below
    if ev.z <= floor:
        return Judgement("reject", ev, ev.describe() + f": below the futility bound ({floor:+.2f})")
    if ev.n >= rule.max_seeds:
        return Judgement("reject", ev, ev.describe() + f": still short of the bar after {ev.n} seeds")
    return Judgement("open", ev, ev.describe() + ": open, one more seed", champion_seed_wanted=ev.m < ev.n + 1)


def values_by_seed(metrics_by_seed: Mapping[str, float]) -> list[float]:
    return [float(v) for v in metrics_by_seed.values()]
