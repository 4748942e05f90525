"""Shared test fixtures. Keep this file small: module-specific helpers live in their tests."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from autosci_graph.task import CategoricalKnob, FloatKnob, Metric, ResearchTask


# A suite started as a background job (``pytest &`` in a non-interactive shell, nohup) runs with
# SIGINT ignored, and every child inherits that: a CLI under test would never see its Ctrl-C, and a
# Ray worker would ignore the interrupt ``ray.cancel`` sends (close waited 10.5 s for the forced
# kill). Children of the suite get Python's own handling, as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def autosci_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prepared task data goes to a per-session folder, never to the user's ~/.cache."""
    previous = os.environ.get("AUTOSCI_CACHE_DIR")
    path = str(tmp_path_factory.mktemp("autosci-cache"))
    os.environ["AUTOSCI_CACHE_DIR"] = path
    yield path
    if previous is None:
        os.environ.pop("AUTOSCI_CACHE_DIR", None)
    else:
        os.environ["AUTOSCI_CACHE_DIR"] = previous


class ScriptsTask(Protocol):
    def __call__(self, root: Path, *, timeout: float = 4.0, **extra: Any) -> ResearchTask: ...


@pytest.fixture(scope="session")
def scripts_task() -> ScriptsTask:
    """Factory of a task over the purpose-built scripts in tests/integration/scripts/: its
    ``script`` knob picks which one is the run's main process; ``x`` is the score ``ok.py`` prints."""
    scripts = Path(__file__).parent / "integration" / "scripts"
    names = tuple(sorted(p.name for p in scripts.glob("*.py") if p.name != "dispatch.py"))

    def make(root: Path, *, timeout: float = 4.0, **extra: Any) -> ResearchTask:
        if not root.exists():
            shutil.copytree(scripts, root, ignore=shutil.ignore_patterns("__pycache__"))
        return ResearchTask(
            name="scripts",
            root=root,
            command=("{python}", "dispatch.py", "--seed={seed}"),
            metric=Metric(name="score", direction="minimize"),
            editable=("ok.py",),
            knobs={
                "script": CategoricalKnob(choices=names, default="ok.py"),
                "x": FloatKnob(low=-10, high=10, default=1.0),
                "sleep": FloatKnob(low=0, high=10, default=0.0),
            },
            timeout=timeout,
            **extra,
        )

    return make
