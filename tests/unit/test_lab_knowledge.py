"""Facts derived from the log (autosci_graph/lab/knowledge.py): noise floor, effects, untested axes."""

from __future__ import annotations

import math
import random

import pytest
from lab_helpers import entry, make_synth_task

from autosci_graph.lab.changes import change_key, config_key, full_config
from autosci_graph.lab.knowledge import axis_effects, knowledge, noise_estimate
from autosci_graph.state import Change

TASK = make_synth_task()

#: Exact 10% quantiles of chi-square (scipy.stats.chi2.ppf(0.1, k)).
CHI2_10 = {1: 0.015791, 2: 0.210721, 3: 0.584374, 5: 1.610308, 12: 6.303796, 30: 20.599235}


def repeats(values: list[float], knobs: dict, start: int = 0, kind: str = "baseline") -> list:
    return [entry(start + i, None, None, knobs, kind=kind, outcome="keep", gain=None, metric=v, seed=i) for i, v in enumerate(values)]


def test_config_key_is_stable_and_order_free() -> None:
    assert config_key({"a": 1, "b": 2.0}) == config_key({"b": 2.0, "a": 1})
    assert config_key({"a": 1}, "diff\n") == config_key({"a": 1}, "  diff")
    assert config_key({"a": 1}) != config_key({"a": 2})
    assert config_key({"a": 1}) != config_key({"a": 1}, "--- x")
    assert len(config_key({"a": 1})) == 16


def test_full_config_fills_the_task_defaults() -> None:
    assert full_config(TASK, Change(knobs={"lr": 0.01})) == {**TASK.default_config(), "lr": 0.01}
    # An override and the same full configuration written out are one configuration.
    assert change_key(TASK, Change(knobs={"lr": 0.01})) == change_key(TASK, Change(knobs={**TASK.default_config(), "lr": 0.01}))


def test_noise_needs_repeat_runs() -> None:
    log = [entry(i, "lr", "increase", {"lr": 0.002 * (i + 1)}, metric=1.0 + i) for i in range(4)]
    assert noise_estimate(TASK, log) == (None, 0)
    assert noise_estimate(TASK, []) == (None, 0)


def test_noise_is_pooled_over_repeat_groups() -> None:
    log = repeats([1.0, 1.2], {}) + repeats([2.0, 2.1, 2.2], {"lr": 0.01}, start=2, kind="confirm")
    sigma, dof = noise_estimate(TASK, log, upper=False)
    # Sum of squares 0.02 + 0.02 over 1 + 2 degrees of freedom.
    assert dof == 3
    assert sigma == pytest.approx(math.sqrt(0.04 / 3))


def test_failed_and_non_finite_runs_do_not_count_as_noise() -> None:
    log = repeats([1.0, 1.2], {}) + [
        entry(2, None, None, {}, kind="noise", outcome="crash", status="crash", metric=None, seed=5),
        entry(3, None, None, {}, kind="noise", outcome="remeasure", metric=float("nan"), seed=6),
    ]
    sigma, dof = noise_estimate(TASK, log, upper=False)
    assert dof == 1 and sigma == pytest.approx(math.sqrt(0.02))


@pytest.mark.parametrize("dof", sorted(CHI2_10))
def test_upper_noise_is_the_90_percent_upper_confidence_bound(dof: int) -> None:
    values = [1.0 + 0.1 * ((i * 7) % 5) for i in range(dof + 1)]
    point, d = noise_estimate(TASK, repeats(values, {}), upper=False)
    upper, d2 = noise_estimate(TASK, repeats(values, {}))
    assert d == d2 == dof
    assert point is not None and upper is not None and upper > point
    assert upper / point == pytest.approx(math.sqrt(dof / CHI2_10[dof]), rel=0.02)


def test_upper_noise_covers_the_true_sigma_nine_times_in_ten() -> None:
    # Two repeats of the default configuration (one degree of freedom), the lab's usual start.
    rng = random.Random(1234)
    trials, covered = 4000, 0
    for _ in range(trials):
        a, b = rng.gauss(0, 1.0), rng.gauss(0, 1.0)
        sigma, _ = noise_estimate(TASK, repeats([a, b], {}))
        covered += sigma is not None and sigma >= 1.0
    assert 0.88 <= covered / trials <= 0.92


def test_axis_effects() -> None:
    log = [
        entry(0, None, None, {}, kind="baseline", outcome="keep", gain=None, author="baseline"),
        entry(1, "lr", "increase", {"lr": 0.002}, outcome="keep", gain=0.3),
        entry(2, "lr", "increase", {"lr": 0.004}, outcome="discard", gain=-0.1),
        entry(3, "lr", "decrease", {"lr": 0.0005}, outcome="discard", gain=-0.4),
        entry(4, "lr", "decrease", {"lr": 0.0002}, outcome="crash", gain=None, status="crash"),
        entry(5, "act", "set", {"act": "gelu"}, outcome="discard", gain=0.01),
        entry(6, None, None, {}, kind="noise", outcome="remeasure", gain=None),
    ]
    eff = axis_effects(log)
    assert set(eff) == {"lr", "act"}
    lr = eff["lr"]
    assert (lr.tried, lr.keeps, lr.discards, lr.crashes) == (4, 1, 2, 1)
    assert lr.mean_gain == pytest.approx((0.3 - 0.1 - 0.4) / 3)
    assert lr.best_gain == pytest.approx(0.3)
    assert lr.by_direction == pytest.approx({"increase": 0.1, "decrease": -0.4})
    assert eff["act"].by_direction == pytest.approx({"set": 0.01})


def test_an_axis_that_only_crashed_has_no_measured_gain() -> None:
    eff = axis_effects([entry(0, "width", "increase", {"width": 512}, outcome="crash", gain=None, status="oom")])
    assert eff["width"].crashes == 1 and eff["width"].mean_gain is None and eff["width"].best_gain is None


def test_knowledge_lists_untested_axes_in_task_order() -> None:
    log = repeats([1.0, 1.1], {}) + [entry(2, "width", "increase", {"width": 64}, gain=-0.1)]
    k = knowledge(TASK, log)
    assert k.untested_axes == ["lr", "dropout", "act"]
    assert k.noise_samples == 1 and k.noise_sigma is not None and k.noise_sigma > 0.1 / math.sqrt(2)
    assert set(k.effects) == {"width"}
    assert knowledge(TASK, []).untested_axes == list(TASK.knobs)
