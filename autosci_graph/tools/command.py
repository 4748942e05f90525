"""Build the exact command line of a run from the task, the seed and the change's knobs."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from autosci_graph.task import KnobValue, ResearchTask


def format_command(argv: tuple[str, ...] | list[str], **values: str) -> list[str]:
    """Fill ``{python}``, ``{seed}``, ``{data_dir}``... placeholders; other braces stay as written."""
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


def format_value(value: KnobValue) -> str:
    """A knob value as a ``--key=value`` flag carries it; floats keep full precision."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def build_command(
    task: ResearchTask,
    knobs: Mapping[str, KnobValue],
    seed: int,
    data_dir: Path,
    python: str = sys.executable,
) -> list[str]:
    """``task.command`` with placeholders filled, then ``--key=value`` for the task's fixed
    arguments, then for the change's knobs (validated by the caller).

    Only knobs the change sets are passed: the script's own constants are the defaults, so a
    diff that edits a default is not silently overridden by a flag.
    """
    argv = format_command(task.command, python=python, seed=str(seed), data_dir=str(data_dir))
    argv += [f"--{k}={format_value(v)}" for k, v in task.fixed.items()]
    argv += [f"--{k}={format_value(v)}" for k, v in knobs.items()]
    return argv
