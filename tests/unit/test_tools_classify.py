"""From process outcome and output to run status."""

from __future__ import annotations

import pytest

from autosci_graph.tools.classify import classify, traceback_tail
from autosci_graph.tools.metrics import parse_metrics
from autosci_graph.tools.process import ProcessOutcome


def _outcome(rc: int | None = 0, timed_out: bool = False, launch_error: str | None = None) -> ProcessOutcome:
    return ProcessOutcome(rc, timed_out, False, 0.0, 1.0, 10, False, 0, launch_error)


@pytest.mark.parametrize(
    ("rc", "timed_out", "output", "status"),
    [
        (0, False, "---\nm: 1.0\n", "ok"),
        (-9, True, "---\nm: 1.0\n", "timeout"),
        (1, False, "Traceback (most recent call last):\n  File x\nValueError: boom\n", "crash"),
        (1, False, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\n", "oom"),
        (-9, False, "step 1\n", "oom"),
        (0, False, "---\nm: nan\n", "diverged"),
        (0, False, "---\nm: inf\n", "diverged"),
        (1, False, "step 5 loss: nan\n", "diverged"),
        (1, False, "diverged at step 3\n---\nm: nan\n", "diverged"),
        (0, False, '{"step": 1, "loss": NaN}\n', "diverged"),
        (0, False, "all good, but no metric\n", "no_metric"),
        (0, False, "warning: loss diverging early\n---\nm: 2.0\n", "ok"),  # a finite metric decides
        (3, False, "---\nm: 1.0\n", "crash"),
    ],
)
def test_classes(rc: int, timed_out: bool, output: str, status: str) -> None:
    parsed = parse_metrics(output, "m")
    got, error = classify(_outcome(rc, timed_out), parsed, output, timeout=5)
    assert got == status
    assert (error is None) == (status == "ok")


def test_launch_failure_is_a_crash() -> None:
    status, error = classify(_outcome(None, launch_error="No such file"), parse_metrics("", "m"), "", 5)
    assert status == "crash" and "No such file" in (error or "")


def test_traceback_tail_keeps_the_last_traceback_whole() -> None:
    text = "noise\n" * 100 + "Traceback (most recent call last):\n  File \"a.py\", line 1\nKeyError: 'x'\n"
    assert traceback_tail(text).startswith("Traceback") and traceback_tail(text).endswith("KeyError: 'x'")
    long = "Traceback (most recent call last):\n" + "  frame\n" * 5000 + "RuntimeError: end\n"
    tail = traceback_tail(long, chars=1000)
    assert len(tail) < 1100 and tail.startswith("Traceback") and tail.endswith("RuntimeError: end")
