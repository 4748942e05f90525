"""ResearchTask: what is optimized, loaded from ``task.toml`` or built in Python.

A task folder holds a training script and a ``task.toml``::

    name = "gpt_bpb"
    command = ["{python}", "train.py", "--seed={seed}"]   # knob overrides are appended as --key=value
    prepare = ["{python}", "prepare.py"]                   # optional, cached data preparation
    editable = ["train.py"]                                # files a diff may touch
    seeds = [1, 2, 3]
    timeout = 60                                           # seconds before the run is killed
    network = false                                        # runs are sandboxed without network
    pass_env = ["WANDB_MODE"]                              # the caller's variables a run may see

    [limits]                                               # per-run caps (defaults shown)
    memory_mb = 0                                          # per process; 0: 90% of the RAM
    processes = 4096                                       # processes and threads of the run

    [metric]
    name = "val_bpb"
    direction = "minimize"
    target = 2.0                                           # optional

    [knobs.lr]
    type = "float"
    low = 1e-4
    high = 3e-2
    log = true
    default = 3e-3

Placeholders in ``command`` and ``prepare``: ``{python}`` (the interpreter running autosci),
``{seed}``, ``{data_dir}`` (the task's shared, cached data folder). Runs also see the data folder
as the ``AUTOSCI_DATA_DIR`` environment variable.

A run is contained (see :mod:`autosci_graph.tools.sandbox`): its workspace, its data, a read-only
system, no network unless ``network = true``, and only an allow-list of environment variables
(see :mod:`autosci_graph.tools.env`) plus those named in ``pass_env`` and set in ``env``.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autosci_graph.errors import TaskError

KnobValue = Union[bool, int, float, str]

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FloatKnob(_Frozen):
    """A real-valued knob in ``[low, high]``, optionally searched on a log scale."""

    type: Literal["float"] = "float"
    low: float
    high: float
    default: float
    log: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> "FloatKnob":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if not self.low <= self.default <= self.high:
            raise ValueError(f"default {self.default} is outside [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale knob needs low > 0")
        return self

    def validate_value(self, value: KnobValue) -> float:
        v = float(value)
        if not (math.isfinite(v) and self.low <= v <= self.high):
            raise ValueError(f"{value!r} is outside [{self.low}, {self.high}]")
        return v


class IntKnob(_Frozen):
    """An integer knob in ``[low, high]``, optionally searched on a log scale."""

    type: Literal["int"] = "int"
    low: int
    high: int
    default: int
    log: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> "IntKnob":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if not self.low <= self.default <= self.high:
            raise ValueError(f"default {self.default} is outside [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale knob needs low > 0")
        return self

    def validate_value(self, value: KnobValue) -> int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{value!r} is not an integer")
        v = int(value)
        if not self.low <= v <= self.high:
            raise ValueError(f"{value!r} is outside [{self.low}, {self.high}]")
        return v


class CategoricalKnob(_Frozen):
    """A knob that takes one of a fixed list of values."""

    type: Literal["categorical"] = "categorical"
    choices: tuple[KnobValue, ...] = Field(min_length=2)
    default: KnobValue
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> "CategoricalKnob":
        if self.default not in self.choices:
            raise ValueError(f"default {self.default!r} is not one of {list(self.choices)}")
        return self

    def validate_value(self, value: KnobValue) -> KnobValue:
        for choice in self.choices:
            if value == choice or str(value) == str(choice):
                return choice
        raise ValueError(f"{value!r} is not one of {list(self.choices)}")


Knob = Union[FloatKnob, IntKnob, CategoricalKnob]
#: Knobs are told apart by their ``type`` field, so an error names the knob's real type.
_TaggedKnob = Annotated[Knob, Field(discriminator="type")]


def unit(knob: Knob, value: KnobValue) -> float:
    """Position of a numeric value in [0, 1] along its knob (log scale where the knob is)."""
    if isinstance(knob, CategoricalKnob):
        raise TypeError("categorical knobs have no unit position")
    lo, hi, v = float(knob.low), float(knob.high), float(value)  # type: ignore[arg-type]
    if knob.log:
        return (math.log(max(v, 1e-300)) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (v - lo) / (hi - lo)


def from_unit(knob: Knob, u: float) -> KnobValue:
    """The knob value at unit position ``u`` (clipped to the range, ints rounded)."""
    if isinstance(knob, CategoricalKnob):
        raise TypeError("categorical knobs have no unit position")
    u = min(1.0, max(0.0, u))
    lo, hi = float(knob.low), float(knob.high)
    v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if knob.log else lo + u * (hi - lo)
    if isinstance(knob, IntKnob):
        return int(min(max(round(v), knob.low), knob.high))  # type: ignore[arg-type]
    return float(f"{v:.4g}")


class Metric(_Frozen):
    """The number being optimized."""

    name: str
    direction: Literal["minimize", "maximize"] = "minimize"
    target: float | None = None
    #: Third metric protocol: a regex with one group capturing the value (see tools.metrics).
    regex: str | None = None

    @property
    def minimize(self) -> bool:
        return self.direction == "minimize"

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a < b if self.minimize else a > b

    def gain(self, new: float, old: float) -> float:
        """Improvement of ``new`` over ``old``, positive when better, in metric units."""
        return old - new if self.minimize else new - old

    def reached(self, value: float) -> bool:
        if self.target is None:
            return False
        return value <= self.target if self.minimize else value >= self.target


class FinalEval(_Frozen):
    """A held-out evaluation only the harness runs, on the champion (see autosci_graph.final_eval)."""

    command: tuple[str, ...]
    #: Files (relative to the task folder) the evaluation needs; they never enter a workspace.
    files: tuple[str, ...] = ()
    metric: str | None = None


class Limits(_Frozen):
    """Caps on one run's resources (``[limits]`` in ``task.toml``); see :mod:`autosci_graph.tools.limits`."""

    #: Memory each process of the run may allocate, in MiB (``RLIMIT_DATA``). 0: 90% of the RAM.
    memory_mb: int = Field(default=0, ge=0)
    #: Processes and threads the run may have at once (0: no cap). Past it, ``fork`` fails.
    processes: int = Field(default=4096, ge=0)


class ResearchTask(_Frozen):
    """A training script with a metric to improve, and the space agents may search.

    Build one in Python or load it with :func:`load_task`::

        task = load_task("examples/gpt_bpb")
        task.metric.name        # "val_bpb"
        task.default_config()   # {"lr": 0.003, ...}
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    root: Path
    command: tuple[str, ...] = Field(min_length=1)
    metric: Metric
    description: str = ""
    prepare: tuple[str, ...] | None = None
    editable: tuple[str, ...] = ()
    knobs: dict[str, _TaggedKnob] = Field(default_factory=dict)
    #: Arguments passed to every run as ``--key=value`` that agents may not change (the training
    #: budget, for instance). The harness may override them (``with_fixed``), agents never.
    fixed: dict[str, KnobValue] = Field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    timeout: float = Field(default=600.0, gt=0)
    #: Extra environment for runs (values written here, in the task, not taken from the caller).
    env: dict[str, str] = Field(default_factory=dict)
    #: Names of the caller's environment variables a run may see besides the safe allow-list
    #: (``PATH``, locale, ``CUDA_*``, thread counts, ``AUTOSCI_*``); nothing else passes.
    pass_env: tuple[str, ...] = ()
    #: Whether runs may use the network (the sandbox has none by default; the report says so).
    network: bool = False
    #: Memory and process caps of each run.
    limits: Limits = Field(default_factory=Limits)
    #: Paths (relative to root) never copied into a workspace.
    exclude: tuple[str, ...] = ()
    final_eval: FinalEval | None = None
    #: A quick check of a code change before it costs an experiment (a few training steps, seconds):
    #: run in a scratch workspace with the change applied; a non-zero exit sends the change back to
    #: its author. Same placeholders as ``command``; the fixed arguments are not added.
    smoke: tuple[str, ...] | None = None
    #: Seconds the smoke command may take.
    smoke_timeout: float = Field(default=60.0, gt=0)

    @field_validator("knobs")
    @classmethod
    def _knob_names(cls, knobs: dict[str, Knob]) -> dict[str, Knob]:
        for name in knobs:
            if not name or set(name.lower()) - _NAME_CHARS or name[0].isdigit():
                raise ValueError(f"knob name {name!r} must be a Python identifier")
        return knobs

    @field_validator("editable")
    @classmethod
    def _editable_inside(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for p in paths:
            if Path(p).is_absolute() or ".." in Path(p).parts:
                raise ValueError(f"editable path {p!r} must be relative and inside the task folder")
        return paths

    def default_config(self) -> dict[str, KnobValue]:
        """The knob values a run uses when a change does not override them."""
        return {name: knob.default for name, knob in self.knobs.items()}

    def validate_overrides(self, overrides: dict[str, Any]) -> dict[str, KnobValue]:
        """Check knob overrides against the search space; raise ``ValueError`` naming the knob."""
        clean: dict[str, KnobValue] = {}
        for name, value in overrides.items():
            if name not in self.knobs:
                known = ", ".join(sorted(self.knobs)) or "none"
                raise ValueError(f"unknown knob {name!r} (task {self.name} knobs: {known})")
            try:
                clean[name] = self.knobs[name].validate_value(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"knob {name}: {exc}") from None
        return clean

    def with_fixed(self, **fixed: KnobValue) -> "ResearchTask":
        """A copy of the task with some fixed arguments replaced (e.g. a shorter training budget)."""
        return self.model_copy(update={"fixed": {**self.fixed, **fixed}})

    def workspace_excludes(self) -> tuple[str, ...]:
        """Paths never copied into an experiment workspace (including final-evaluation files)."""
        final = self.final_eval.files + ("task.toml",) if self.final_eval else ()
        # ideas/ are candidate patches for the scientist, not part of a run.
        return tuple(dict.fromkeys(self.exclude + final + ("ideas",)))

    def default_data_dir(self) -> Path:
        """Where prepared data is cached, shared by every run of this task (``AUTOSCI_DATA_DIR``)."""
        return _cache_root() / "data" / self.name

    def default_final_dir(self) -> Path:
        """Where held-out final-evaluation data is cached (``AUTOSCI_FINAL_DIR``); never shown to runs."""
        return _cache_root() / "final" / self.name


def _cache_root() -> Path:
    return Path(os.environ.get("AUTOSCI_CACHE_DIR") or Path.home() / ".cache" / "autosci_graph")


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in {"float", "int", "categorical"})) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: field '{field}': {msg}"


def load_task(path: str | os.PathLike[str]) -> ResearchTask:
    """Load a task from a folder holding ``task.toml`` (or the file itself).

    Raises :class:`~autosci_graph.errors.TaskError` with one line naming the file, the field and
    what is expected.
    """
    p = Path(path).expanduser().resolve()
    toml_path = p / "task.toml" if p.is_dir() else p
    if not toml_path.is_file():
        raise TaskError(f"{toml_path}: no task file here; a task folder needs a task.toml (see examples/gpt_bpb)")
    try:
        raw = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TaskError(f"{toml_path}: not valid TOML ({exc}); fix the syntax") from None
    if "root" in raw:
        raise TaskError(f"{toml_path}: field 'root' is not allowed; the task folder is where task.toml lies")
    knobs = raw.get("knobs", {})
    if not isinstance(knobs, dict):
        raise TaskError(f"{toml_path}: field 'knobs': expected tables like [knobs.lr] with a type")
    for name, spec in knobs.items():
        if not isinstance(spec, dict) or spec.get("type") not in {"float", "int", "categorical"}:
            raise TaskError(
                f"{toml_path}: field 'knobs.{name}.type': expected one of float, int, categorical"
            )
    try:
        task = ResearchTask(root=toml_path.parent, **raw)
    except ValidationError as exc:
        raise TaskError(_format_validation_error(toml_path, exc)) from None
    for rel in task.editable:
        if not (task.root / rel).is_file():
            raise TaskError(f"{toml_path}: field 'editable': {rel!r} does not exist in {task.root}")
    return task
