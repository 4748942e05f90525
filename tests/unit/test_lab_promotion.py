"""Promotion by pooled evidence (autosci_graph/lab/promotion.py)."""

from __future__ import annotations

import math
import random

import pytest

from autosci_graph.lab.promotion import PromotionRule, evidence, is_deterministic, judge, pooled_noise
from autosci_graph.lab.stats import t_critical
from autosci_graph.task import Metric

LOSS = Metric(name="loss", direction="minimize")
ACC = Metric(name="acc", direction="maximize")
RULE = PromotionRule()


@pytest.mark.parametrize("z,dof,expected", [(1.0, 3, 1.196881), (2.5, 2, 8.889475), (3.0, 3, 9.218940),
                                             (3.0, 10, 3.956937), (3.0, 100, 3.076756)])
def test_bars_are_t_quantiles_with_the_tail_of_k_normal_sigmas(z: float, dof: int, expected: float) -> None:
    # scipy.stats.t.isf(scipy.stats.norm.sf(z), dof)
    assert t_critical(z, dof) == pytest.approx(expected, rel=1e-5)
    assert t_critical(z, 0) == math.inf


def test_noise_is_pooled_over_every_repeated_configuration() -> None:
    sigma, dof = pooled_noise([[1.0, 1.2], [2.0, 2.2, 2.4], [5.0]])
    # squares: 0.02 + 0.08 over 1 + 2 degrees of freedom
    assert dof == 3 and sigma == pytest.approx(math.sqrt(0.10 / 3))
    assert pooled_noise([[1.0], [2.0]]) == (None, 0)


def test_evidence_is_all_seeds_against_the_champion_mean() -> None:
    ev = evidence(LOSS, [1.0, 1.0, 1.0, 1.0], [0.9, 0.95], 0.1, 20, RULE)
    assert ev.gain == pytest.approx(0.075) and ev.n == 2 and ev.m == 4
    assert ev.se == pytest.approx(0.1 * math.sqrt(1 / 2 + 1 / 4))
    assert evidence(ACC, [0.5, 0.5], [0.6], 0.1, 20, RULE).gain == pytest.approx(0.1)


def _sequential(true_gain: float, seed: int, sigma: float = 1.0, champion_seeds: int = 4, dof: int = 30) -> tuple[str, int]:
    """Feed a candidate seeds one at a time, as the lab does; return the verdict and seeds used."""
    rng = random.Random(seed)
    champion = [rng.gauss(0.0, sigma) for _ in range(champion_seeds)]
    runs: list[float] = []
    while True:
        runs.append(rng.gauss(-true_gain, sigma))  # a loss: lower is better
        j = judge(LOSS, champion, runs, sigma, dof, RULE)
        if j.verdict != "open":
            return j.verdict, len(runs)
        if j.champion_seed_wanted:
            champion.append(rng.gauss(0.0, sigma))


def test_a_gain_of_two_sigma_is_promoted_within_a_bounded_number_of_seeds() -> None:
    outcomes = [_sequential(2.0, seed) for seed in range(200)]
    promoted = [n for v, n in outcomes if v == "promote"]
    assert len(promoted) / len(outcomes) >= 0.8
    assert max(n for _, n in outcomes) <= RULE.max_seeds


def test_a_one_sigma_gain_is_detected_far_more_often_than_noise_is_promoted() -> None:
    real = sum(_sequential(1.0, seed)[0] == "promote" for seed in range(300)) / 300
    noise = sum(_sequential(0.0, seed)[0] == "promote" for seed in range(300)) / 300
    # The futility stop trades some power on 1σ gains for seeds saved on noise (bench/ measures it).
    assert real >= 0.2 and noise <= 0.03 and real > 8 * max(noise, 0.005)


def test_one_lucky_seed_is_not_promoted() -> None:
    # The first run looks like a 4σ gain; it stays open, and the next seeds at the true (zero)
    # gain pull the evidence back below the bar.
    champion = [0.0, 0.1, -0.1, 0.0]
    j = judge(LOSS, champion, [-4.0 * 0.1], 0.1, 30, RULE)
    assert j.verdict == "open"
    j = judge(LOSS, champion, [-0.4, 0.05, 0.0], 0.1, 30, RULE)
    assert j.verdict != "promote"


def test_a_loss_on_the_first_seed_is_rejected_at_once() -> None:
    assert judge(LOSS, [1.0, 1.0], [1.05], 0.1, 10, RULE).verdict == "reject"


def test_identical_repeats_mean_one_run_decides() -> None:
    sigma, dof = pooled_noise([[1.5, 1.5], [1.2, 1.2]])
    assert is_deterministic(sigma, dof)
    assert judge(LOSS, [1.5, 1.5], [1.4999], sigma, dof, RULE).verdict == "promote"
    assert judge(LOSS, [1.5, 1.5], [1.5], sigma, dof, RULE).verdict == "reject"
    assert judge(LOSS, [1.5, 1.5], [1.6], sigma, dof, RULE).verdict == "reject"


def test_a_screened_candidate_survives_one_bad_first_run() -> None:
    # A rebased candidate carries earlier evidence: one run on the new champion does not end it.
    j = judge(LOSS, [1.0, 1.0, 1.0], [1.02], 0.05, 20, RULE, screened=True)
    assert j.verdict == "open"
    assert judge(LOSS, [1.0, 1.0, 1.0], [1.02], 0.05, 20, RULE).verdict == "reject"
