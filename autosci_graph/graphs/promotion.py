"""Noise-aware promotion: when a result may replace the champion. Plain arithmetic, no agent.

The run-to-run noise σ is estimated from repeat runs of identical configurations on different
seeds (the baseline's seeds, confirmations, champion repeats). A gain is compared with σ of the
*difference* between the candidate's mean and the champion's mean, ``σ·sqrt(1/n_cand + 1/n_champ)``,
and a bar of "k σ" means the t-quantile with the same tail probability as k normal σ: with few
repeats σ itself is uncertain and the bar rises accordingly (the authors measured seed variance
4-6x above what they had assumed; a σ taken at face value from two runs lets lucky seeds in).

* an exploration whose gain exceeds ``promote_sigmas`` of that is promoted at once;
* a smaller gain above ``near_miss_sigmas`` (a near miss) is confirmed on another seed first; it is promoted when every seed beat
  the champion and the mean gain clears ``confirm_sigmas``; a persistent near miss gets one more
  seed (``max_confirmations``); otherwise it is discarded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autosci_graph.graphs.context import LabSettings
from autosci_graph.scientists.stats import t_critical
from autosci_graph.state import Champion, Outcome, RunResult
from autosci_graph.task import Metric


@dataclass(frozen=True)
class Decision:
    """What the lab does with a finished run."""

    outcome: Outcome
    gain: float | None
    reason: str
    #: Submit another seed of the same change before deciding.
    confirm: bool = False
    new_champion: Champion | None = None


def sigma_of_difference(sigma: float, n_candidate: int, n_champion: int) -> float:
    return sigma * math.sqrt(1.0 / max(1, n_candidate) + 1.0 / max(1, n_champion))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _promote(champion: Champion, runs: list[RunResult], experiment_id: str, description: str) -> Champion:
    metrics = [r.metric for r in runs if r.metric is not None]
    return Champion(
        experiment_id=experiment_id,
        config=dict(runs[0].change.knobs),
        diff=runs[0].change.diff,
        metric=_mean(metrics),
        seeds=[r.seed for r in runs],
        metrics_by_seed={str(r.seed): r.metric for r in runs if r.metric is not None},
        description=description,
    )


def judge_exploration(
    metric: Metric, settings: LabSettings, champion: Champion, result: RunResult, sigma: float | None, dof: int, description: str = ""
) -> Decision:
    """Decide on a first run of a change."""
    if not result.ok or result.metric is None or champion.metric is None:
        return Decision("crash", None, f"run failed: {result.status}" + (f" ({result.error})" if result.error else ""))
    gain = metric.gain(result.metric, champion.metric)
    if sigma is not None and dof >= settings.min_noise_dof:
        sd = sigma_of_difference(sigma, 1, len(champion.seeds) or 1)
        bar = t_critical(settings.promote_sigmas, dof) * sd
        if gain > bar:
            champ = _promote(champion, [result], result.experiment_id, description)
            return Decision("keep", gain, f"gain {gain:+.4g} exceeds the {settings.promote_sigmas:g}σ bar ({bar:.3g}): promoted", new_champion=champ)
        near = t_critical(settings.near_miss_sigmas, dof) * sd
        if gain > near:
            return Decision("pending_confirmation", gain, f"near miss: gain {gain:+.4g} below the {settings.promote_sigmas:g}σ bar ({bar:.3g}); confirming on another seed", confirm=True)
        if gain > 0:
            return Decision("discard", gain, f"gain {gain:+.4g} is within the noise (the {settings.near_miss_sigmas:g}σ bar is {near:.3g})")
    elif gain > 0:
        return Decision("pending_confirmation", gain, f"gain {gain:+.4g} but the noise floor is not measured yet; confirming on another seed", confirm=True)
    return Decision("discard", gain, f"gain {gain:+.4g}: no improvement over the champion ({champion.metric:.5g})")


def judge_confirmation(
    metric: Metric,
    settings: LabSettings,
    champion: Champion,
    runs: list[RunResult],
    sigma: float | None,
    dof: int,
    confirmations_done: int,
    candidate_id: str,
    description: str = "",
) -> Decision:
    """Decide on a candidate after a confirmation run; ``runs`` are all its seeds, oldest first."""
    latest = runs[-1]
    if not latest.ok or champion.metric is None:
        return Decision("discard", None, f"confirmation run failed: {latest.status}")
    ok_runs = [r for r in runs if r.ok and r.metric is not None]
    gains = [metric.gain(r.metric, champion.metric) for r in ok_runs]  # type: ignore[arg-type]
    # The first run was picked *because* it looked good (winner's curse): the test uses only the
    # fresh confirmation seeds; the first run must merely not contradict them.
    fresh = gains[1:]
    if not fresh:
        return Decision("discard", None, "no successful confirmation run")
    fresh_gain = _mean(fresh)
    n_champ = len(champion.seeds) or 1
    if sigma is None:
        bar = 0.0 if all(g > 0 for g in gains) and len(fresh) >= 2 else math.inf
        near = 0.0
    else:
        bar = t_critical(settings.confirm_sigmas, dof) * sigma_of_difference(sigma, len(fresh), n_champ)
        near = t_critical(settings.near_miss_sigmas, dof) * sigma_of_difference(sigma, len(fresh), n_champ)
    if all(g > 0 for g in gains) and fresh_gain > bar:
        champ = _promote(champion, ok_runs, candidate_id, description)
        return Decision("keep", _mean(gains), f"confirmed on {len(fresh)} fresh seed(s): gain {fresh_gain:+.4g} > {bar:.3g}", new_champion=champ)
    if fresh_gain > near and confirmations_done < settings.max_confirmations:
        return Decision("pending_confirmation", _mean(gains), f"persistent near miss: fresh-seed gain {fresh_gain:+.4g} (bar {bar:.3g}); one more seed", confirm=True)
    return Decision("discard", _mean(gains), f"not confirmed: fresh-seed gain {fresh_gain:+.4g} over {len(fresh)} seed(s) (bar {bar:.3g})")
