"""Turn how a process ended, and what it printed, into a run status and an error message.

Order matters: a run we killed for its budget is a ``timeout`` whatever it printed; memory
exhaustion is recognised before a generic ``crash``; a NaN/inf metric or loss is ``diverged``
(even when the script then exited with an error about it; a clean exit with a finite metric is
judged by the metric alone); a clean exit without the metric is ``no_metric``.
"""

from __future__ import annotations

import math
import re

from autosci_graph.state import RunStatus
from autosci_graph.tools.metrics import ParsedMetrics
from autosci_graph.tools.process import ProcessOutcome

_OOM = re.compile(
    r"CUDA out of memory|OutOfMemoryError|\bMemoryError\b|Cannot allocate memory|std::bad_alloc"
    r"|out of memory|oom-kill|Killed process \d+|^Killed$",
    re.I | re.M,
)
_DIVERGED = re.compile(
    r"\bdiverg(ed|ing|ence)\b|\bloss\b[^\n]{0,40}?[:=\s]\s*[-+]?(nan|inf(inity)?)\b|\b(nan|inf) (loss|detected)\b",
    re.I,
)
_TRACEBACK = "Traceback (most recent call last):"
TAIL_CHARS = 4000


def log_tail(text: str, lines: int = 30, chars: int = TAIL_CHARS) -> str:
    """The last ``lines`` lines of ``text``, at most ``chars`` characters."""
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return tail[-chars:]


def traceback_tail(text: str, chars: int = TAIL_CHARS) -> str:
    """The last Python traceback in ``text`` (to its end), else the last lines."""
    at = text.rfind(_TRACEBACK)
    if at < 0:
        return log_tail(text, lines=20, chars=chars)
    tb = text[at:].rstrip()
    if len(tb) > chars:  # keep the head (where) and the end (what), drop the middle frames
        tb = tb[: chars // 4] + "\n  ...\n" + tb[-(3 * chars) // 4 :]
    return tb


def classify(outcome: ProcessOutcome, parsed: ParsedMetrics, output: str, timeout: float) -> tuple[RunStatus, str | None]:
    """The status of a finished run and, for a failure, the error to show."""
    rc = outcome.returncode
    if outcome.launch_error is not None:
        return "crash", f"the command could not start: {outcome.launch_error}"
    if outcome.timed_out:
        return "timeout", f"killed after the {timeout:g} s budget (process group: TERM, then KILL)"
    tail = output[-200_000:]  # patterns are looked for near the end, where failures are reported
    if rc != 0 and (_OOM.search(tail) or rc == -9):
        # An unexplained SIGKILL we did not send is, in practice, the kernel's OOM killer.
        reason = _OOM.search(tail)
        what = reason.group(0) if reason else "killed by SIGKILL (the kernel's out-of-memory killer, most likely)"
        return "oom", f"out of memory: {what}\n{traceback_tail(tail, 1500)}"
    value = parsed.value
    if value is not None and not math.isfinite(value):
        return "diverged", f"the metric is {value} (diverged)"
    if rc != 0 or value is None:
        # Only without a good metric: a finished run with a finite metric is judged by it.
        m = _DIVERGED.search(tail)
        if m or parsed.nonfinite_in_curve:
            return "diverged", f"the run diverged: {m.group(0) if m else 'NaN/inf in its JSON lines'}\n{log_tail(tail, 5)}"
    if rc != 0:
        sig = f" (signal {-rc})" if rc is not None and rc < 0 else ""
        return "crash", f"exit status {rc}{sig}\n{traceback_tail(tail)}"
    if value is None:
        return "no_metric", f"the run exited cleanly but reported no metric; last output:\n{log_tail(tail, 10)}"
    return "ok", None
