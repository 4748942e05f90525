"""Read a run's metrics from its output, whatever the script printed.

Three protocols, tried in order for the task's metric:

1. a final summary block: a line that is exactly ``---`` followed by ``name: value`` lines
   (autoresearch's format); the *last* such block in the output counts;
2. JSON lines on stdout, e.g. ``{"step": 100, "val_bpb": 1.23}``; the last line that names the
   metric gives its value, and every JSON line with numbers is a point of the learning curve;
3. a task-supplied regex (``[metric] regex`` in ``task.toml``) whose first group is the value;
   the last match counts.

The parser never raises on any input: a training script may print anything, in any encoding.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Literal

Protocol = Literal["summary", "jsonl", "regex"]

_SUMMARY_LINE = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*[:=]\s*(\S+)\s*$")
#: Curves can be long; a runaway script printing millions of JSON lines must not eat memory.
MAX_CURVE_POINTS = 10_000


@dataclass(frozen=True)
class ParsedMetrics:
    """What the parser found in one run's output.

    ``value`` is the task metric (possibly NaN or infinite: the caller decides that a run
    diverged); ``metrics`` holds only finite values so it always serializes to JSON.
    """

    value: float | None = None
    source: Protocol | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)
    #: True when some JSON line reported a NaN/inf number (a divergence marker); such numbers
    #: are left out of ``curve`` so it round-trips through JSON.
    nonfinite_in_curve: bool = False


def _to_float(raw: str) -> float | None:
    """Parse a number as scripts print it (``1.23``, ``nan``, ``inf``, ``1e-3``, ``12.5%`` no)."""
    try:
        return float(raw.strip().rstrip(","))
    except (ValueError, OverflowError):
        return None


def _summary_block(lines: list[str]) -> dict[str, float]:
    """Values of the last ``---`` block; stops at the first line that is not ``name: value``."""
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].strip() != "---":
            continue
        values: dict[str, float] = {}
        for line in lines[start + 1 :]:
            if not line.strip():
                continue
            m = _SUMMARY_LINE.match(line)
            if not m:
                break
            v = _to_float(m.group(2))
            if v is not None:
                values[m.group(1)] = v
        if values:
            return values
    return {}


def _json_number(v: object) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        try:
            return float(v)
        except OverflowError:
            return math.inf
    return None


def _json_lines(lines: list[str]) -> tuple[list[dict[str, float]], dict[str, float], bool]:
    """The curve (finite values only), the last raw value of each name, and a NaN/inf flag."""
    curve: list[dict[str, float]] = []
    last: dict[str, float] = {}
    nonfinite = False
    for line in lines:
        s = line.strip()
        if not (s.startswith("{") and s.endswith("}")):
            continue
        try:
            obj = json.loads(s)  # accepts NaN/Infinity, which diverging scripts print
        except (ValueError, RecursionError):
            continue
        if not isinstance(obj, dict):
            continue
        point: dict[str, float] = {}
        for k, v in obj.items():
            f = _json_number(v)
            if f is not None:
                point[str(k)] = f
        if not point:
            continue
        last.update(point)
        if any(not math.isfinite(v) for v in point.values()):
            nonfinite = True
            # Curves are stored as JSON: NaN/inf would not round-trip, the flag keeps the news.
            point = {k: v for k, v in point.items() if math.isfinite(v)}
        if len(curve) < MAX_CURVE_POINTS:
            curve.append(point)
        else:  # keep the end of a long curve: the last point carries the final metric
            curve[-1] = point
    return curve, last, nonfinite


def _regex_value(text: str, pattern: str) -> float | None:
    try:
        rx = re.compile(pattern, re.M)
    except re.error:
        return None
    value: float | None = None
    for m in rx.finditer(text):
        raw = m.group(1) if rx.groups else m.group(0)
        if raw is not None:
            f = _to_float(raw)
            if f is not None:
                value = f
    return value


def parse_metrics(output: str | bytes, metric: str, regex: str | None = None) -> ParsedMetrics:
    """Find ``metric`` (and every other reported number) in a run's output.

    Example::

        >>> parse_metrics("step 1\\n---\\nval_bpb: 1.5\\n", "val_bpb").value
        1.5
    """
    try:
        text = output.decode("utf-8", errors="replace") if isinstance(output, bytes) else output
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
        lines = text.split("\n")
        summary = _summary_block(lines)
        curve, last, nonfinite = _json_lines(lines)

        metrics: dict[str, float] = dict(last)  # the last JSON value of each name...
        metrics.update(summary)  # ...unless the summary block says otherwise

        value: float | None = None
        source: Protocol | None = None
        if metric in summary:
            value, source = summary[metric], "summary"
        elif metric in last:
            value, source = last[metric], "jsonl"
        if value is None and regex:
            value = _regex_value(text, regex)
            if value is not None:
                source = "regex"
                metrics[metric] = value
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        return ParsedMetrics(value=value, source=source, metrics=finite, curve=curve, nonfinite_in_curve=nonfinite)
    except Exception:  # pragma: no cover - a defect here must not take the executor down
        import logging

        logging.getLogger(__name__).exception("metric parser failed; treating the run as reporting nothing")
        return ParsedMetrics()
