"""Noise-aware promotion (autosci_graph/graphs/promotion.py) and the settings it reads (graphs/context.py)."""

from __future__ import annotations

import math

import pytest
from lab_helpers import make_synth_task

from autosci_graph.errors import SettingsError
from autosci_graph.graphs.context import LabSettings
from autosci_graph.graphs.promotion import judge_confirmation, judge_exploration, sigma_of_difference
from autosci_graph.scientists.stats import t_critical
from autosci_graph.state import Champion, Change, RunResult
from autosci_graph.task import Metric

TASK = make_synth_task()
LOSS = Metric(name="loss", direction="minimize")
ACC = Metric(name="acc", direction="maximize")
S = LabSettings()
CHAMP = Champion(experiment_id=None, config=TASK.default_config(), metric=1.0, seeds=[0, 1], metrics_by_seed={"0": 0.99, "1": 1.01})
SIGMA = 0.01
#: Degrees of freedom of the noise estimate in most tests.
DOF = 3


def bar(k: float, n_candidate: int = 1, dof: int = DOF, n_champion: int = 2) -> float:
    """A "k σ" bar: the t-quantile matching k normal σ, times σ of the difference of the means."""
    return t_critical(k, dof) * SIGMA * math.sqrt(1 / n_candidate + 1 / n_champion)


def run(metric: float | None, seed: int = 0, status: str = "ok", eid: str = "x1") -> RunResult:
    return RunResult(experiment_id=eid, status=status, change=Change(knobs={**TASK.default_config(), "lr": 0.01}),  # type: ignore[arg-type]
                     seed=seed, metric_name="loss", metric=metric)


def test_settings_defaults() -> None:
    s = LabSettings()
    assert (s.n_teams, s.analysts_per_team, s.experimenters_per_team) == (3, 1, 2)
    assert (s.falsify_rotations, s.falsify_refutes) == (3, 3)
    assert (s.regroup_rotations_without_keep, s.regroup_discards, s.regroup_axes) == (3, 8, 3)
    assert s.stop_after_no_keep == 10
    assert s.promote_sigmas >= 2.0 and s.confirm_sigmas >= 2.0 and s.max_confirmations == 2
    assert s.roster() == ["analyst-1", "analyst-2", "analyst-3"] + [f"experimenter-{i}" for i in range(1, 7)]


@pytest.mark.parametrize("kwargs", [{"n_teams": 0}, {"max_experiments": 1}, {"baseline_seeds": 0}])
def test_settings_refuse_impossible_values(kwargs: dict) -> None:
    with pytest.raises(SettingsError):
        LabSettings(**kwargs)


@pytest.mark.parametrize("z,dof,expected", [(1.0, 3, 1.196881), (2.5, 2, 8.889475), (3.0, 3, 9.218940),
                                             (3.0, 10, 3.956937), (3.0, 100, 3.076756)])
def test_bars_are_t_quantiles_with_the_tail_of_k_normal_sigmas(z: float, dof: int, expected: float) -> None:
    # scipy.stats.t.isf(scipy.stats.norm.sf(z), dof)
    assert t_critical(z, dof) == pytest.approx(expected, rel=1e-5)
    assert t_critical(z, 0) == math.inf


def test_sigma_of_difference() -> None:
    assert sigma_of_difference(1.0, 1, 1) == pytest.approx(math.sqrt(2))
    assert sigma_of_difference(2.0, 4, 4) == pytest.approx(2 * math.sqrt(0.5))
    assert sigma_of_difference(1.0, 0, 0) == pytest.approx(math.sqrt(2))  # never divides by zero


# -- explorations ------------------------------------------------------------------------------


def test_a_gain_far_beyond_the_noise_promotes_at_once() -> None:
    gain = bar(S.promote_sigmas) * 1.1
    d = judge_exploration(LOSS, S, CHAMP, run(1.0 - gain), SIGMA, DOF, "lr up")
    assert d.outcome == "keep" and not d.confirm and d.gain == pytest.approx(gain)
    assert d.new_champion is not None
    assert d.new_champion.experiment_id == "x1" and d.new_champion.metric == pytest.approx(1.0 - gain)
    assert d.new_champion.seeds == [0] and d.new_champion.config["lr"] == 0.01 and d.new_champion.description == "lr up"


def test_a_near_miss_is_confirmed_on_another_seed_first() -> None:
    gain = bar(S.promote_sigmas) * 0.9  # below the bar, above the near-miss floor
    assert gain > bar(S.near_miss_sigmas)
    d = judge_exploration(LOSS, S, CHAMP, run(1.0 - gain), SIGMA, DOF)
    assert d.outcome == "pending_confirmation" and d.confirm and d.new_champion is None


def test_a_gain_within_the_noise_is_discarded_unconfirmed() -> None:
    gain = bar(S.near_miss_sigmas) * 0.9
    d = judge_exploration(LOSS, S, CHAMP, run(1.0 - gain), SIGMA, DOF)
    assert d.outcome == "discard" and not d.confirm and d.gain == pytest.approx(gain)


def test_a_loss_is_discarded() -> None:
    d = judge_exploration(LOSS, S, CHAMP, run(1.2), SIGMA, DOF)
    assert d.outcome == "discard" and d.gain == pytest.approx(-0.2) and d.new_champion is None


@pytest.mark.parametrize("status", ["crash", "timeout", "diverged", "no_metric"])
def test_a_failed_run_is_a_crash(status: str) -> None:
    d = judge_exploration(LOSS, S, CHAMP, run(None, status=status), SIGMA, DOF)
    assert d.outcome == "crash" and d.gain is None and status in d.reason


@pytest.mark.parametrize("sigma,dof", [(None, 0), (1e-6, 1)])
def test_without_a_measured_noise_floor_even_a_huge_gain_is_confirmed_first(sigma: float | None, dof: int) -> None:
    d = judge_exploration(LOSS, S, CHAMP, run(0.1), sigma, dof)
    assert d.outcome == "pending_confirmation" and d.confirm
    assert judge_exploration(LOSS, S, CHAMP, run(1.1), sigma, dof).outcome == "discard"


def test_a_noise_floor_from_few_repeats_raises_the_bar() -> None:
    # The same gain is clear with σ known from 100 repeats, only a near miss with σ from 2.
    gain = bar(S.promote_sigmas, dof=100) * 1.1
    assert judge_exploration(LOSS, S, CHAMP, run(1.0 - gain), SIGMA, 100).outcome == "keep"
    assert judge_exploration(LOSS, S, CHAMP, run(1.0 - gain), SIGMA, 2).outcome == "pending_confirmation"


def test_maximized_metrics_gain_upward() -> None:
    champ = CHAMP.model_copy(update={"metric": 0.80})
    assert judge_exploration(ACC, S, champ, run(0.80 + 1.1 * bar(S.promote_sigmas)), SIGMA, DOF).outcome == "keep"
    assert judge_exploration(ACC, S, champ, run(0.70), SIGMA, DOF).outcome == "discard"


def test_the_bar_is_higher_against_a_one_seed_champion() -> None:
    one_seed = CHAMP.model_copy(update={"seeds": [0]})
    gain = bar(S.promote_sigmas) * 1.1  # clears the two-seed bar, not the one-seed one (σ·√2)
    assert gain < bar(S.promote_sigmas, n_champion=1)
    assert judge_exploration(LOSS, S, CHAMP, run(1.0 - gain), SIGMA, DOF).outcome == "keep"
    assert judge_exploration(LOSS, S, one_seed, run(1.0 - gain), SIGMA, DOF).outcome == "pending_confirmation"


# -- confirmations -----------------------------------------------------------------------------


def confirm(runs: list[RunResult], done: int, sigma: float | None = SIGMA, dof: int = DOF):  # type: ignore[no-untyped-def]
    return judge_confirmation(LOSS, S, CHAMP, runs, sigma, dof, done, "x1", "lr up")


def test_a_confirmed_candidate_is_promoted_with_its_mean() -> None:
    # Judged on the fresh seed only (the first run was selected for looking good).
    g = bar(S.confirm_sigmas, 1) * 1.2 / 0.9
    d = confirm([run(1.0 - g * 1.1, seed=0, eid="x1"), run(1.0 - g * 0.9, seed=1, eid="x1-c2")], 1)
    assert d.outcome == "keep" and d.gain == pytest.approx(g)
    c = d.new_champion
    assert c is not None and c.experiment_id == "x1" and c.metric == pytest.approx(1.0 - g)
    assert c.seeds == [0, 1] and set(c.metrics_by_seed) == {"0", "1"} and c.description == "lr up"


def test_every_seed_must_beat_the_champion() -> None:
    # The mean clears the bar by far, but one seed lost.
    d = confirm([run(1.0 - 10 * bar(S.confirm_sigmas, 2), seed=0), run(1.0005, seed=1)], 1)
    assert d.outcome != "keep" and d.new_champion is None


def test_a_persistent_near_miss_gets_one_more_seed_then_is_discarded() -> None:
    g = bar(S.confirm_sigmas, 2) * 0.8  # positive on every seed, below the bar, above the near-miss floor
    assert g > bar(S.near_miss_sigmas, 2)
    d = confirm([run(1.0 - g, seed=0), run(1.0 - g, seed=1)], 1)
    assert d.outcome == "pending_confirmation" and d.confirm
    g3 = bar(S.confirm_sigmas, 3) * 0.8
    d = confirm([run(1.0 - g3, seed=s) for s in range(3)], S.max_confirmations)
    assert d.outcome == "discard" and not d.confirm


def test_the_selected_first_run_cannot_carry_a_weak_confirmation() -> None:
    # A lucky first run far above the bar, then a fresh seed that only just beats the champion:
    # the mean clears the two-run bar, the fresh evidence does not.
    first, fresh = 1.0 - 5 * bar(S.confirm_sigmas, 2), 1.0 - 0.5 * bar(S.confirm_sigmas, 1)
    assert (2.0 - first - fresh) / 2 > bar(S.confirm_sigmas, 2)
    assert confirm([run(first, seed=0), run(fresh, seed=1)], 1).outcome != "keep"


def test_a_confirmation_at_noise_level_is_discarded_at_once() -> None:
    d = confirm([run(1.0 - 0.001, seed=0), run(1.0 + 0.0009, seed=1)], 1)
    assert d.outcome == "discard" and not d.confirm


def test_a_failed_confirmation_run_discards_the_candidate() -> None:
    d = confirm([run(0.5, seed=0), run(None, seed=1, status="crash")], 1)
    assert d.outcome == "discard" and d.new_champion is None


def test_without_a_noise_floor_three_winning_seeds_are_needed() -> None:
    two = [run(0.9, seed=0), run(0.91, seed=1)]
    assert confirm(two, 1, sigma=None, dof=0).outcome == "pending_confirmation"
    assert confirm(two + [run(0.92, seed=2)], 2, sigma=None, dof=0).outcome == "keep"
    assert confirm(two + [run(1.05, seed=2)], 2, sigma=None, dof=0).outcome == "discard"
