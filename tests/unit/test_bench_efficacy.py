"""The efficacy generator is what it claims, and the scorer counts a hand-built log correctly."""

from __future__ import annotations

import math
import random

import pytest

from autosci_graph.state import Change, ExperimentEntry, Proposal, RunResult
from autosci_graph.task import CategoricalKnob, FloatKnob, IntKnob, KnobValue
from autosci_graph.tools.inprocess import FunctionExecutor
from bench._scoring import champion_path, false_promotions, past_abandon_bar, redundant_explorations
from bench.bench_efficacy import Trace, score
from bench.efficacy_tasks import CLIFF_KNOB, MAX_DISTANCE, MIN_DISTANCE, NOISE_KNOB, _unit, make_instance, random_config

SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
def test_instance_has_every_kind_of_knob_and_a_distant_optimum(seed: int) -> None:
    inst = make_instance(seed)
    knobs = inst.task.knobs
    assert 5 <= len(knobs) <= 9
    kinds = {(type(k).__name__, getattr(k, "log", None)) for k in knobs.values()}
    assert {("FloatKnob", True), ("FloatKnob", False), ("IntKnob", True), ("IntKnob", False), ("CategoricalKnob", None)} <= kinds
    assert 1 <= len(inst.irrelevant) <= 3 and CLIFF_KNOB not in inst.irrelevant
    for name, k in knobs.items():
        if name in inst.irrelevant:
            continue
        assert inst.optimum_config[name] != k.default
        if not isinstance(k, CategoricalKnob):
            # 4 significant digits or an integer: the rounding may cross a bound by a hair
            assert MIN_DISTANCE - 1e-3 <= abs(_unit(k, inst.optimum_config[name]) - _unit(k, k.default)) <= MAX_DISTANCE + 1e-3
    assert inst.default_loss > inst.optimum_loss


@pytest.mark.parametrize("seed", SEEDS)
def test_optimum_is_the_minimum_over_a_random_sample(seed: int) -> None:
    inst = make_instance(seed)
    assert inst.true_loss(inst.optimum_config) == pytest.approx(inst.optimum_loss)
    assert inst.regret(inst.optimum_config) == pytest.approx(0.0) and inst.regret(inst.task.default_config()) == pytest.approx(1.0)
    rng = random.Random(seed)
    losses = [inst.true_loss(random_config(inst, rng)) for _ in range(500)]
    finite = [x for x in losses if not math.isnan(x)]
    assert len(finite) > 100 and min(finite) > inst.optimum_loss


@pytest.mark.parametrize("seed", SEEDS)
def test_irrelevant_knobs_do_not_change_the_truth(seed: int) -> None:
    inst = make_instance(seed)
    rng = random.Random(seed)
    for _ in range(20):
        cfg = random_config(inst, rng)
        other = {**cfg, **{k: v for k, v in random_config(inst, rng).items() if k in inst.irrelevant}}
        assert inst.true_loss(cfg) == inst.true_loss(other) or math.isnan(inst.true_loss(cfg))


def test_interacting_knobs_move_each_others_best_value() -> None:
    inst = make_instance(0)
    a, b, _, _ = inst.interaction
    ka, kb = inst.task.knobs[a], inst.task.knobs[b]
    assert not isinstance(ka, CategoricalKnob) and not isinstance(kb, CategoricalKnob)

    def best_a(b_value: KnobValue) -> KnobValue:
        grid = sorted({ka.low + i * (ka.high - ka.low) / 200 for i in range(201)} if not ka.log
                      else {ka.low * (ka.high / ka.low) ** (i / 200) for i in range(201)})
        if isinstance(ka, IntKnob):
            grid = list(range(ka.low, ka.high + 1))
        return min(grid, key=lambda v: inst.true_loss({**inst.optimum_config, a: v, b: b_value}))

    assert best_a(inst.optimum_config[b]) != best_a(kb.high if inst.optimum_config[b] != kb.high else kb.low)


@pytest.mark.parametrize("variant", ["noisy", "deterministic", "pure_noise"])
def test_beyond_the_cliff_runs_diverge(variant: str) -> None:
    inst = make_instance(1, variant)  # type: ignore[arg-type]
    lr = inst.task.knobs[CLIFF_KNOB]
    assert isinstance(lr, FloatKnob) and inst.optimum_config[CLIFF_KNOB] < inst.cliff < lr.high
    over = Change(knobs={**inst.optimum_config, CLIFF_KNOB: inst.cliff * 1.01})
    assert math.isnan(inst.true_loss(over.knobs)) and math.isnan(inst.experiment(over, 0))
    assert not math.isnan(inst.true_loss({**inst.optimum_config, CLIFF_KNOB: inst.cliff * 0.99}))
    assert FunctionExecutor(inst.experiment, metric_name="loss").run(over).status == "diverged"


def test_deterministic_repeats_identically_and_noisy_does_not() -> None:
    det, noisy = make_instance(2, "deterministic"), make_instance(2, "noisy")
    change = Change(knobs=det.task.default_config())
    assert {det.experiment(change, s) for s in range(6)} == {det.true_loss(change.knobs)}
    runs = [noisy.experiment(change, s) for s in range(6)]
    assert len(set(runs)) == 6 and runs[0] == noisy.experiment(change, 0)  # a repeat of one seed is identical
    assert det.true_loss(change.knobs) == noisy.true_loss(change.knobs)  # same task, only the noise differs


def test_noise_is_larger_at_small_batch() -> None:
    inst = make_instance(3)
    k = inst.task.knobs[NOISE_KNOB]
    assert isinstance(k, IntKnob)
    small, large = inst.sigma({NOISE_KNOB: k.low}), inst.sigma({NOISE_KNOB: k.high})
    assert small == pytest.approx(4 * large) and large < inst.sigma0 < small
    assert 0.01 <= inst.sigma0 / (inst.default_loss - inst.optimum_loss) <= 0.03


def test_pure_noise_is_constant_in_truth() -> None:
    inst = make_instance(4, "pure_noise")
    rng = random.Random(0)
    truths = [inst.true_loss(random_config(inst, rng)) for _ in range(200)]
    finite = {x for x in truths if not math.isnan(x)}
    assert len(finite) == 1 and inst.optimum_loss == inst.default_loss == finite.pop()
    change = Change(knobs=inst.task.default_config())
    assert len({inst.experiment(change, s) for s in range(4)}) == 4


# -- the scorer -----------------------------------------------------------------------------------


def _entry(i: int, knobs: dict[str, KnobValue], *, kind: str = "explore", outcome: str = "discard", team: str = "t1") -> ExperimentEntry:
    result = RunResult(experiment_id=f"e{i}", status="ok", change=Change(knobs=knobs), seed=0, metric_name="loss", metric=1.0)
    proposal = Proposal(proposal_id=f"e{i}", author="a", team=team if kind != "baseline" else "", axis="x", direction="increase",
                        change=Change(knobs=knobs))
    return ExperimentEntry(index=i, result=result, proposal=proposal, outcome=outcome, kind=kind)  # type: ignore[arg-type]


def test_scorer_counts_repeats_past_bar_and_false_promotions() -> None:
    log = [
        _entry(0, {"x": 0}, kind="baseline", outcome="keep"),
        _entry(1, {"x": 1}, outcome="keep"),          # true improvement
        _entry(2, {"x": 2}),                            # t1 discard 1
        _entry(3, {"x": 2}, kind="confirm"),            # a confirmation repeat: intentional, t1 discard 2
        _entry(4, {"x": 3}, outcome="crash"),           # t1 discard 3
        _entry(5, {"x": 2}),                            # exact repeat of e2, and past t1's bar
        _entry(6, {"x": 0}, team="t2"),                 # the default again: repeats the baseline, not an exploration
        _entry(7, {"x": 5}, outcome="keep"),            # past the bar; a false promotion (truth is worse)
        _entry(8, {"x": 6}),                            # the keep reset t1's streak
        _entry(9, {"x": 5}, kind="noise", outcome="remeasure", team=""),
    ]
    assert redundant_explorations(log) == [5]
    assert past_abandon_bar(log) == [5, 7]
    # An exploration that became the lab's lead was kept as what every team builds on: not a discard.
    led = log[:4] + [log[4].model_copy(update={"outcome": "pending_confirmation"})] + log[5:]
    assert past_abandon_bar(led) == [] and past_abandon_bar(led, lead_resets=False) == [7]

    def truth(cfg: dict[str, KnobValue]) -> float:
        return abs(float(cfg["x"]) - 1.5)

    path = champion_path(log, {"x": 0})
    assert path[0] == {"x": 0} and path[1] == {"x": 1} and path[-1] == {"x": 5}
    assert false_promotions(path, {"x": 0}, truth) == (2, 1)


def test_score_reads_regret_and_experiments_to_target() -> None:
    inst = make_instance(5)
    default, opt = inst.task.default_config(), dict(inst.optimum_config)
    trace = Trace(champions=[default, default, opt, opt], configs=[Change(knobs=c) for c in (default, default, opt, opt)])
    row = score(inst, "optuna", trace, budget=4)
    assert row["regret"] == pytest.approx(0.0) and row["to_target"] == 3
    assert (row["promotions"], row["false_promotions"], row["redundant"]) == (1, 0, 2)
    never = score(inst, "optuna", Trace(champions=[default] * 4, configs=[Change(knobs=default)] * 4), budget=4)
    assert never["to_target"] is None and never["regret"] == pytest.approx(1.0)


def test_ablation_compares_each_instance_with_itself() -> None:
    from bench.bench_ablation import DEFAULTS, compare

    def row(variant: str, instance: int, regrets: list[float], to_target: int | None) -> dict[str, object]:
        return {"variant": variant, "instance": instance, "regret_path": regrets, "to_target": to_target, "budget": 40}

    path = [1.0] * 9 + [0.4] * 10 + [0.2] * 21  # 40 experiments
    rows = [row(DEFAULTS, 0, path, None), row(DEFAULTS, 1, [r / 10 for r in path], 10),
            row("v", 0, [r / 2 for r in path], 20), row("v", 1, [r / 5 for r in path], 12)]
    c = compare(rows, "v", 40)
    # instance 0 halves its regret, instance 1 doubles it: the geometric mean ratio is 1, one lower each
    assert c["instances"] == 2 and math.isclose(c["ratio@40"], 1.0) and c["lower@40"] == 1
    assert c["to_target_change"] == ((20 - 41) + (12 - 10)) / 2  # never reached counts as budget + 1


@pytest.mark.parametrize("spec", ["no-equals", 'bad={"settings": {"no_such_setting": 1}}', 'bad={"other": {}}', "bad={not json",
                                  'bad={"system": "optuna"}', "bad=5", 'bad=["settings"]'])
def test_an_ablation_variant_with_a_mistake_is_refused_by_name(spec: str) -> None:
    from bench.bench_ablation import parse_variant

    with pytest.raises(SystemExit) as err:
        parse_variant(spec)
    assert "--variant" in str(err.value)


def test_an_ablation_variant_may_run_the_single_agent() -> None:
    from bench.bench_ablation import parse_variant, run_job

    name, over = parse_variant('single={"system": "single"}')
    row = run_job((name, over, 0, 6))
    assert row["variant"] == "single" and len(row["regret_path"]) == 6
    # The lab spends its first three runs on the default's seeds; the single agent's differ from them.
    lab = run_job(("lab", {}, 0, 6))
    assert lab["regret_path"][:3] == [1.0, 1.0, 1.0] and row["regret_path"] != lab["regret_path"]
