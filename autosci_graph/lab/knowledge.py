"""Facts derived from the experiment log: noise floor, per-axis effects, untested axes.

Plain functions over :class:`~autosci_graph.state.ExperimentEntry` lists, shared by the graph's
housekeeping (promotion arithmetic) and by scientists (what to try next).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from autosci_graph.agent_records import AxisEffect, Knowledge
from autosci_graph.lab.changes import change_key
from autosci_graph.lab.promotion import pooled_noise
from autosci_graph.lab.stats import sigma_upper
from autosci_graph.state import ExperimentEntry
from autosci_graph.task import ResearchTask


def noise_estimate(task: ResearchTask, entries: Iterable[ExperimentEntry], *, upper: bool = True) -> tuple[float | None, int]:
    """Run-to-run noise σ from repeat runs of identical configurations on different seeds.

    Returns ``(sigma, dof)``. With ``upper`` the estimate is the 90% upper confidence bound:
    with a handful of repeats a point estimate is often far too small (the authors measured seed
    variance 4-6x above what they assumed), and a small σ is what lets lucky seeds in.
    """
    groups: dict[str, list[float]] = defaultdict(list)
    for e in entries:
        if e.result.ok and e.result.metric is not None and math.isfinite(e.result.metric):
            groups[change_key(task, e.result.change)].append(e.result.metric)
    sigma, dof = pooled_noise(groups.values())
    if sigma is None:
        return None, 0
    if upper:
        sigma = sigma_upper(sigma, dof)
    return sigma, dof


@dataclass
class _Tally:
    tried: int = 0
    keeps: int = 0
    discards: int = 0
    crashes: int = 0
    gains: list[float] = field(default_factory=list)
    by_direction: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def axis_effects(entries: Iterable[ExperimentEntry]) -> dict[str, AxisEffect]:
    """Per-axis counts and mean gain (positive = better than the champion of the time)."""
    tallies: dict[str, _Tally] = {}
    for e in entries:
        axis = e.proposal.axis
        if not axis or e.proposal.author == "baseline":
            continue
        t = tallies.setdefault(axis, _Tally())
        t.tried += 1
        t.keeps += e.outcome == "keep"
        t.crashes += e.outcome == "crash"
        t.discards += e.outcome == "discard"
        if e.gain is not None and math.isfinite(e.gain):
            t.gains.append(e.gain)
            t.by_direction[e.proposal.direction or "set"].append(e.gain)
    return {
        axis: AxisEffect(
            axis=axis, tried=t.tried, keeps=t.keeps, discards=t.discards, crashes=t.crashes,
            mean_gain=sum(t.gains) / len(t.gains) if t.gains else None,
            best_gain=max(t.gains) if t.gains else None,
            by_direction={d: sum(v) / len(v) for d, v in t.by_direction.items() if v},
        )
        for axis, t in tallies.items()
    }


def knowledge(task: ResearchTask, entries: Sequence[ExperimentEntry], extra_axes: Sequence[str] = ()) -> Knowledge:
    """Everything an agent should know before acting, derived from the log. ``extra_axes`` are
    axes beyond the knobs (the task's code ideas, ``code:<axis>``)."""
    sigma, dof = noise_estimate(task, entries)
    effects = axis_effects(entries)
    untested = [k for k in list(task.knobs) + list(extra_axes) if k not in effects]
    return Knowledge(noise_sigma=sigma, noise_samples=dof, effects=effects, untested_axes=untested)

