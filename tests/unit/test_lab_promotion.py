"""Promotion by pooled evidence (autosci_graph/lab/promotion.py)."""

from __future__ import annotations

import math
import random

import pytest

from autosci_graph.lab.promotion import PromotionRule, evidence, is_deterministic, judge, pooled_noise
from autosci_graph.lab.stats import sigma_upper
from autosci_graph.task import Metric

LOSS = Metric(name="loss", direction="minimize")
ACC = Metric(name="acc", direction="maximize")
RULE = PromotionRule()


def test_noise_is_pooled_over_every_repeated_configuration() -> None:
    sigma, dof = pooled_noise([[1.0, 1.2], [2.0, 2.2, 2.4], [5.0]])
    # squares: 0.02 + 0.08 over 1 + 2 degrees of freedom
    assert dof == 3 and sigma == pytest.approx(math.sqrt(0.10 / 3))
    assert pooled_noise([[1.0], [2.0]]) == (None, 0)


def test_evidence_is_all_seeds_against_the_champion_mean() -> None:
    ev = evidence(LOSS, [1.0, 1.0, 1.0, 1.0], [0.9, 0.95], 0.1, 20, RULE)
    assert ev.gain == pytest.approx(0.075) and ev.n == 2 and ev.m == 4
    # A t statistic on the point estimate of σ; its bar is the Student-t quantile at the level
    # of the known-σ bar, so a σ from few repeats raises the bar (t⁻¹(Φ(3), 20) = 3.42).
    assert ev.se == pytest.approx(0.1 * math.sqrt(1 / 2 + 1 / 4))
    assert ev.z == pytest.approx(0.075 / ev.se) and ev.bar == pytest.approx(3.42, abs=0.01)
    assert RULE.bar(1) > 200 and RULE.bar(3) == pytest.approx(9.22, abs=0.01) and RULE.bar(60) == pytest.approx(3.13, abs=0.01)
    assert sigma_upper(0.1, 1) == pytest.approx(0.1 * math.sqrt(1 / 0.01579))  # the scientists' floor: ×8 on one dof
    # scipy.stats.chi2.ppf(0.1, 40) = 29.051: the Wilson-Hilferty branch beyond the table
    assert sigma_upper(0.1, 40) == pytest.approx(0.1 * math.sqrt(40 / 29.051), rel=2e-3)
    assert evidence(ACC, [0.5, 0.5], [0.6], 0.1, 20, RULE).gain == pytest.approx(0.1)


def _sequential(true_gain: float, seed: int, sigma: float = 1.0, champion_seeds: int = 4, dof: int = 30,
                default: tuple[float, ...] = ()) -> tuple[str, int]:
    """Feed a candidate seeds one at a time, as the lab does; return the verdict and seeds used."""
    rng = random.Random(seed)
    champion = [rng.gauss(0.0, sigma) for _ in range(champion_seeds)]
    runs: list[float] = []
    while True:
        runs.append(rng.gauss(-true_gain, sigma))  # a loss: lower is better
        j = judge(LOSS, champion, runs, sigma, dof, RULE, default=default)
        if j.verdict != "open":
            return j.verdict, len(runs)
        if j.champion_seed_wanted:
            champion.append(rng.gauss(0.0, sigma))


def _power(true_gain: float, trials: int = 400, default: tuple[float, ...] = ()) -> tuple[float, float, int]:
    outcomes = [_sequential(true_gain, seed, default=default) for seed in range(trials)]
    return (sum(v == "promote" for v, _ in outcomes) / trials, sum(n for _, n in outcomes) / trials,
            max(n for _, n in outcomes))


def test_a_decisive_gain_promotes_on_its_first_seed() -> None:
    rate, seeds, most = _power(5.0)
    assert rate >= 0.99 and seeds <= 1.5 and most <= RULE.max_seeds  # nothing spent confirming the obvious


def test_gains_of_two_and_three_sigma_promote_within_a_bounded_number_of_seeds() -> None:
    three, seeds3, most3 = _power(3.0)
    two, _, most2 = _power(2.0)
    assert three >= 0.8 and seeds3 <= 3.5 and max(most2, most3) <= RULE.max_seeds
    assert two >= 0.3


def test_noise_is_almost_never_promoted_and_costs_few_seeds() -> None:
    # The bar is sized for 40 candidates per run: a per-candidate rate far below 5% / 40.
    noise, seeds, _ = _power(0.0, trials=1000)
    one_sigma, _, _ = _power(1.0, trials=1000)
    assert noise <= 0.001 and seeds <= 1.3
    assert one_sigma > 10 * max(noise, 0.001)  # a 1σ gain is detected, rarely: the default trades it for budget


def test_a_champion_certified_over_the_default_is_refined_by_steps_too_small_to_certify() -> None:
    # The default ran 10σ worse: every candidate here keeps the certified claim, so the
    # refinement bar (1.5σ level) decides. A 1.5σ gain, promoted 7% of the time at the full bar
    # (the test above), now promotes most of the time, within max_seeds; noise promotes at about
    # the refinement level, never near the full bar's 0.1%, and a real step's expected gain is
    # what a false one costs at most.
    far = (10.0, 10.0, 10.0)
    refine, seeds, most = _power(1.5, trials=1000, default=far)
    plain, _, _ = _power(1.5, trials=1000)
    noise, _, _ = _power(0.0, trials=1000, default=far)
    assert refine >= 0.6 and plain <= 0.2 and most <= RULE.max_seeds and seeds <= 3.0
    assert noise <= 0.12
    # Without the default's runs, or with refinement off, the full bar stands.
    off = PromotionRule(refine_sigmas=None)
    assert judge(LOSS, [0.0, 0.0], [-2.5], 1.0, 30, RULE, default=far).verdict == "promote"
    assert judge(LOSS, [0.0, 0.0], [-2.5], 1.0, 30, RULE).verdict == "open"
    assert judge(LOSS, [0.0, 0.0], [-2.5], 1.0, 30, off, default=far).verdict == "open"


def test_pure_noise_never_refines_what_never_beat_the_default() -> None:
    # The champion is the default itself (no real gain yet): a candidate must clear the full bar
    # over the default before the refinement bar applies, so noise stays at the full bar's rate.
    noise, _, _ = _power(0.0, trials=1000, default=(0.0, 0.0, 0.0))
    assert noise <= 0.002


def test_one_lucky_seed_is_not_promoted() -> None:
    # The first run looks like a 3σ gain; it stays open, and the next seeds at the true (zero)
    # gain pull the evidence back below the bar.
    champion = [0.0, 0.1, -0.1, 0.0]
    j = judge(LOSS, champion, [-3.0 * 0.1], 0.1, 30, RULE)
    assert j.verdict == "open"
    j = judge(LOSS, champion, [-0.3, 0.05, 0.0], 0.1, 30, RULE)
    assert j.verdict == "reject"  # too far below the bar to reach it: no more seeds spent


def test_a_loss_on_the_first_seed_is_rejected_at_once() -> None:
    assert judge(LOSS, [1.0, 1.0], [1.05], 0.1, 10, RULE).verdict == "reject"


def test_identical_repeats_mean_one_run_decides() -> None:
    sigma, dof = pooled_noise([[1.5, 1.5], [1.2, 1.2]])
    assert is_deterministic(sigma, dof)
    assert judge(LOSS, [1.5, 1.5], [1.4999], sigma, dof, RULE).verdict == "promote"
    assert judge(LOSS, [1.5, 1.5], [1.5], sigma, dof, RULE).verdict == "reject"
    assert judge(LOSS, [1.5, 1.5], [1.6], sigma, dof, RULE).verdict == "reject"


def test_a_rebased_candidate_counts_its_earlier_runs() -> None:
    # Two runs on the old champion gained 3σ each; one more on the new champion confirms it.
    champion = [1.0, 1.0, 1.0, 1.0]
    alone = judge(LOSS, champion, [0.97], 0.01, 30, RULE, screened=True)
    pooled = judge(LOSS, champion, [0.97], 0.01, 30, RULE, screened=True, prior_gains=[0.03, 0.03])
    assert alone.verdict == "open" and pooled.verdict == "promote"
    # The runs on this champion must gain too: priors alone never promote.
    assert judge(LOSS, champion, [1.001], 0.01, 30, RULE, screened=True, prior_gains=[0.05] * 5).verdict != "promote"


def test_a_screened_candidate_survives_one_bad_first_run() -> None:
    # A rebased candidate carries earlier evidence: one run on the new champion does not end it.
    j = judge(LOSS, [1.0, 1.0, 1.0], [1.02], 0.05, 20, RULE, screened=True)
    assert j.verdict == "open"
    assert judge(LOSS, [1.0, 1.0, 1.0], [1.02], 0.05, 20, RULE).verdict == "reject"
