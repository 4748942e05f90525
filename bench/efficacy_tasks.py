"""Generated research tasks with known, random optima, for measuring a search method on tasks it
was never tuned to.

``make_instance(seed, variant)`` builds one instance: a :class:`ResearchTask` of 5-9 knobs shaped
like a training run's (a log-scale learning rate, a log-scale integer batch size, and a random
draw of linear floats, integers, log integers, log floats and categoricals), a noise-free
``true_loss`` whose minimum is known exactly, and an ``experiment(change, seed)`` to hand to an
executor. Everything is drawn from ``seed``:

* **optimum**: per knob a random location inside the range, 25-40% of the range away from the
  default (in log space for log knobs: one to two decades, 3-7 doublings, for the learning rate);
  categoricals have a random best choice that is never the default;
* **importances**: a random weight per knob (log-uniform over a factor 20), and 1-3 knobs that do
  not matter at all (weight zero);
* **interaction**: one pair of relevant numeric knobs shares a term ``w·bowl(d_a - c·d_b)``, so the
  best value of one depends on the value of the other (the optimum itself stays where it is);
* **divergence cliff**: a learning rate above a random threshold (2x to 6x above its optimum)
  returns ``nan``, which executors record as a ``diverged`` run;
* **heteroscedastic noise**: σ is twice the nominal level at the smallest batch size and half of
  it at the largest (log-linear in between).

The loss is ``base + gap·raw(knobs)/raw(default)`` with ``raw`` a weighted sum of ``bowl(d)`` over
the knobs' distances ``d`` to the optimum in unit coordinates (``d²``, steepening to ``d⁴`` beyond
:data:`WALL`) plus categorical penalties, so the default is exactly ``gap`` above the optimum,
``base``. As task defaults are educated guesses, the default is better than most random
configurations: a uniformly random one beats it in about a quarter to a third of draws (many
diverge; ``bench_efficacy`` reports the figure per run).

Noise level (variant ``noisy``): :data:`NOISE_FRACTION` of the default-to-optimum gap at the
middle batch size, so 1-4% across batch sizes. The regret target benchmarks use (10% of the gap)
then sits 5 nominal σ above the optimum, and near it single knob steps move the loss by about σ
or less: a lucky seed looks like a real step. Other variants: ``deterministic`` (σ = 0, repeats
identical) and ``pure_noise`` (the true loss is one constant wherever it is finite: any promotion
is a false promotion; the cliff and the noise stay).

Example::

    inst = make_instance(3, "noisy")
    inst.task.knobs                       # the search space
    inst.experiment(Change(knobs=inst.task.default_config()), seed=0)   # a noisy measurement
    inst.regret(inst.optimum_config)      # 0.0
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from autosci_graph.state import Change
from autosci_graph.task import CategoricalKnob, FloatKnob, IntKnob, Knob, KnobValue, Metric, ResearchTask

Variant = Literal["noisy", "deterministic", "pure_noise"]
VARIANTS: tuple[Variant, ...] = ("noisy", "deterministic", "pure_noise")

#: σ at the middle batch size as a fraction of the default-to-optimum gap (noisy and pure_noise).
NOISE_FRACTION = 0.02
#: Smallest distance between default and optimum, as a fraction of the (log) range.
MIN_DISTANCE = 0.25
#: Largest distance between default and optimum: defaults are educated guesses, not random.
MAX_DISTANCE = 0.4
#: Distance (unit coordinates) beyond which the loss grows faster than quadratically: far corners
#: of the space are bad, as they are in real training runs.
WALL = 0.3
#: Seeds every instance's task lists (confirmations and repeats use them in order).
TASK_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)

_Draw = Callable[[random.Random], Knob]


def _log_float(lo_exp: tuple[float, float], decades: tuple[float, float]) -> _Draw:
    def draw(rng: random.Random) -> Knob:
        low = 10 ** rng.uniform(*lo_exp)
        high = low * 10 ** rng.uniform(*decades)
        return FloatKnob(low=_sig(low), high=_sig(high), default=_sig(low), log=True)
    return draw


def _lin_float(low: float, high: tuple[float, float]) -> _Draw:
    def draw(rng: random.Random) -> Knob:
        h = round(rng.uniform(*high), 3)
        return FloatKnob(low=low, high=h, default=low)
    return draw


def _int(low: int, high: tuple[int, int], log: bool = False) -> _Draw:
    def draw(rng: random.Random) -> Knob:
        return IntKnob(low=low, high=rng.randint(*high), default=low, log=log)
    return draw


def _log2_int(lows: tuple[int, ...], octaves: tuple[int, int]) -> _Draw:
    def draw(rng: random.Random) -> Knob:
        low = rng.choice(lows)
        return IntKnob(low=low, high=low * 2 ** rng.randint(*octaves), default=low, log=True)
    return draw


def _cat(*choices: str) -> _Draw:
    def draw(rng: random.Random) -> Knob:
        return CategoricalKnob(choices=choices, default=choices[0])
    return draw


#: The knob every instance has that diverges above a threshold, and the one that sets the noise.
CLIFF_KNOB, NOISE_KNOB = "lr", "batch_size"
_ALWAYS: dict[str, _Draw] = {CLIFF_KNOB: _log_float((-6.0, -4.5), (4.0, 5.0)), NOISE_KNOB: _log2_int((4, 8, 16), (5, 7))}
#: The optional knobs by kind; every instance draws at least one linear float, one linear int and
#: one categorical, then fills up to its size from the rest. Defaults are redrawn below.
_POOL: dict[str, dict[str, _Draw]] = {
    "linear float": {"dropout": _lin_float(0.0, (0.4, 0.6)), "warmup_frac": _lin_float(0.0, (0.2, 0.4)),
                     "label_smoothing": _lin_float(0.0, (0.2, 0.3)), "beta2": _lin_float(0.8, (0.99, 0.999))},
    "linear int": {"depth": _int(1, (10, 24)), "n_heads": _int(1, (8, 16)), "patience": _int(0, (10, 30))},
    "categorical": {"activation": _cat("relu", "gelu", "tanh", "silu"), "optimizer": _cat("sgd", "adam", "adamw", "lion"),
                    "norm": _cat("batch", "layer", "rms", "none"), "schedule": _cat("constant", "cosine", "linear")},
    "log int": {"width": _log2_int((16, 32), (5, 6)), "seq_len": _log2_int((32, 64), (4, 6))},
    "log float": {"weight_decay": _log_float((-6.0, -5.0), (3.0, 5.0)), "grad_clip": _log_float((-1.5, -1.0), (2.0, 3.0))},
}


def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def _bowl(d: float) -> float:
    """Quadratic near the optimum, steeper far from it (quartic beyond ``WALL``)."""
    return d * d * (1.0 + (d / WALL) ** 2)


def _unit(knob: Knob, value: KnobValue) -> float:
    """A numeric knob's value in [0, 1] of its range, log-scaled where the knob is."""
    assert not isinstance(knob, CategoricalKnob)
    lo, hi, v = float(knob.low), float(knob.high), float(value)
    if knob.log:
        return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (v - lo) / (hi - lo)


def _value(knob: Knob, u: float) -> KnobValue:
    """The knob value at unit position ``u`` (rounded: 4 significant digits, or an integer)."""
    assert not isinstance(knob, CategoricalKnob)
    lo, hi = float(knob.low), float(knob.high)
    x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if knob.log else lo + u * (hi - lo)
    if isinstance(knob, IntKnob):
        return min(max(int(round(x)), knob.low), knob.high)
    return min(max(_sig(x), lo), hi)


@dataclass(frozen=True)
class Instance:
    """One generated task with its ground truth. ``experiment`` is what an executor runs."""

    seed: int
    variant: Variant
    task: ResearchTask
    #: The configuration where ``true_loss`` is minimal (irrelevant knobs at their defaults).
    optimum_config: dict[str, KnobValue]
    optimum_loss: float
    default_loss: float
    #: Per knob: its weight in the loss (0 = irrelevant).
    weights: dict[str, float]
    #: Categorical knobs: the loss penalty of each choice, in units of the knob's weight.
    penalties: dict[str, dict[str, float]]
    #: ``(a, b, c, w)``: the term ``w·bowl(d_a - c·d_b)``.
    interaction: tuple[str, str, float, float]
    #: ``lr`` values strictly above this diverge.
    cliff: float
    #: σ at the middle batch size (0 in the deterministic variant).
    sigma0: float
    _base: float = field(repr=False, default=0.0)
    _scale: float = field(repr=False, default=1.0)

    @property
    def irrelevant(self) -> list[str]:
        return [k for k, w in self.weights.items() if w == 0.0]

    def _raw(self, cfg: dict[str, KnobValue]) -> float:
        total, d = 0.0, {}
        for name, knob in self.task.knobs.items():
            if isinstance(knob, CategoricalKnob):
                total += self.weights[name] * self.penalties[name][str(knob.validate_value(cfg[name]))]
            else:
                d[name] = _unit(knob, cfg[name]) - _unit(knob, self.optimum_config[name])
                total += self.weights[name] * _bowl(d[name])
        a, b, c, w = self.interaction
        return total + w * _bowl(d[a] - c * d[b])

    def config(self, knobs: dict[str, KnobValue]) -> dict[str, KnobValue]:
        """The full configuration a change runs: defaults overridden by ``knobs``, validated."""
        return {**self.task.default_config(), **self.task.validate_overrides(knobs)}

    def true_loss(self, knobs: dict[str, KnobValue]) -> float:
        """The noise-free metric; ``nan`` beyond the cliff. Missing knobs take their defaults."""
        cfg = self.config(knobs)
        if float(cfg[CLIFF_KNOB]) > self.cliff:
            return float("nan")
        if self.variant == "pure_noise":
            return self._base
        return self._base + self._scale * self._raw(cfg)

    def sigma(self, knobs: dict[str, KnobValue]) -> float:
        """Run-to-run noise at this configuration: larger at small batch sizes."""
        cfg = self.config(knobs)
        u = _unit(self.task.knobs[NOISE_KNOB], cfg[NOISE_KNOB])
        return self.sigma0 * 2.0 ** (1.0 - 2.0 * u)

    def regret(self, knobs: dict[str, KnobValue]) -> float:
        """Normalized true regret: 0 at the optimum, 1 at the default (``nan`` on pure noise)."""
        gap = self.default_loss - self.optimum_loss
        return (self.true_loss(knobs) - self.optimum_loss) / gap if gap > 0 else float("nan")

    def experiment(self, change: Change, seed: int) -> float:
        """``true_loss`` plus Gaussian noise fixed by (instance, seed, configuration): a repeat of a
        run gives the same number, another seed a different one."""
        cfg = self.config(change.knobs)
        truth = self.true_loss(cfg)
        if math.isnan(truth):
            return truth
        key = repr((self.seed, self.variant, seed, sorted(cfg.items()))).encode()
        rng = random.Random(int(hashlib.sha256(key).hexdigest()[:16], 16))
        return truth + rng.gauss(0.0, self.sigma(cfg))


def random_config(inst: Instance, rng: random.Random) -> dict[str, KnobValue]:
    """A uniformly random configuration (log-uniform on log knobs): the reference a search
    method must beat."""
    cfg: dict[str, KnobValue] = {}
    for name, k in inst.task.knobs.items():
        if isinstance(k, CategoricalKnob):
            cfg[name] = rng.choice(k.choices)
        else:
            cfg[name] = _value(k, rng.random())
    return cfg


def _place(rng: random.Random, knob: Knob, lo: float = 0.05, hi: float = 0.95) -> tuple[KnobValue, KnobValue]:
    """A (default, optimum) pair ``MIN_DISTANCE`` to ``MAX_DISTANCE`` apart in unit coordinates."""
    while True:
        default, opt = _value(knob, rng.uniform(lo, hi)), _value(knob, rng.uniform(lo, hi))
        if MIN_DISTANCE <= abs(_unit(knob, default) - _unit(knob, opt)) <= MAX_DISTANCE:
            return default, opt


def make_instance(seed: int, variant: Variant = "noisy") -> Instance:
    """Generate instance ``seed`` of a variant; the same seed gives the same task in every variant
    (only the noise, or the truth for ``pure_noise``, differs)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    rng = random.Random(f"efficacy-{seed}")
    n = rng.randint(5, 9)
    picks = {name: draw for name, draw in _ALWAYS.items()}
    for kind in ("linear float", "linear int", "categorical"):
        name = rng.choice(sorted(_POOL[kind]))
        picks[name] = _POOL[kind][name]
    rest = sorted((name, kind) for kind, group in _POOL.items() for name in group if name not in picks)
    for name, kind in rng.sample(rest, n - len(picks)):
        picks[name] = _POOL[kind][name]
    names = sorted(picks)
    rng.shuffle(names)  # knob order carries no information

    knobs: dict[str, Knob] = {}
    optimum: dict[str, KnobValue] = {}
    penalties: dict[str, dict[str, float]] = {}
    cliff = math.inf
    for name in names:
        knob = picks[name](rng)
        if isinstance(knob, CategoricalKnob):
            choices = list(knob.choices)
            default, best = rng.sample(choices, 2)
            penalties[name] = {str(c): 0.0 if c == best else rng.uniform(0.1, 0.3) for c in choices}
            knob, opt = knob.model_copy(update={"default": default}), best
        elif name == CLIFF_KNOB:
            # Default below the optimum, the cliff 2x-6x above it: too small a learning rate is
            # the usual starting point, and overshooting the optimum by a few steps diverges.
            u_opt = rng.uniform(0.4, 0.75)
            opt = _value(knob, u_opt)
            cliff = float(opt) * 10 ** rng.uniform(math.log10(2), math.log10(6))
            default = _value(knob, rng.uniform(_unit(knob, opt) - MAX_DISTANCE, _unit(knob, opt) - MIN_DISTANCE))
            knob = knob.model_copy(update={"default": default})
        else:
            default, opt = _place(rng, knob)
            knob = knob.model_copy(update={"default": default})
        knobs[name] = knob
        optimum[name] = opt

    while True:  # at least two relevant numeric knobs remain for the interaction
        irrelevant = rng.sample([k for k in names if k != CLIFF_KNOB], rng.randint(1, 3))
        if sum(1 for k in names if k not in irrelevant and not isinstance(knobs[k], CategoricalKnob)) >= 2:
            break
    weights = {k: 0.0 if k in irrelevant else math.exp(rng.uniform(math.log(0.05), math.log(1.0))) for k in names}
    for k in irrelevant:
        optimum[k] = knobs[k].default
    numeric = [k for k in names if weights[k] > 0 and not isinstance(knobs[k], CategoricalKnob)]
    a, b = rng.sample(numeric, 2)
    interaction = (a, b, rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 1.5), math.exp(rng.uniform(math.log(0.2), math.log(1.0))))

    task = ResearchTask(name=f"efficacy_{seed}", root=Path("."), command=("(in-process)",),
                        metric=Metric(name="loss", direction="minimize"), seeds=TASK_SEEDS, knobs=knobs,
                        description=f"generated efficacy instance {seed} ({variant})")
    base, gap = rng.uniform(0.5, 3.0), 10 ** rng.uniform(-1.0, 0.5)
    probe = Instance(seed, variant, task, optimum, base, base + gap, weights, penalties, interaction, cliff, 0.0)
    scale = gap / probe._raw(task.default_config())
    sigma0 = 0.0 if variant == "deterministic" else NOISE_FRACTION * gap
    loss_gap = 0.0 if variant == "pure_noise" else gap
    return Instance(seed, variant, task, optimum, base, base + loss_gap, weights, penalties, interaction, cliff, sigma0,
                    _base=base, _scale=scale)
