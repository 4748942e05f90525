"""What the memory stores: one record per experiment, a filter over records, and a recall hit."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autosci_graph.state import FAILURE_STATUSES, Change, Outcome, RunResult, RunStatus
from autosci_graph.task import KnobValue

#: Why an experiment did not help: a run failure class, or a finished run that lost to the champion.
FailureClass = Literal["timeout", "crash", "oom", "diverged", "no_metric", "bad_change", "regression", "no_gain"]

_RUN_FAILURES: tuple[str, ...] = (*FAILURE_STATUSES, "no_metric")
_ERROR_CHARS = 600  # the tail of an error that is kept: enough for the exception line and its cause
_STATUS_WORDS: dict[str, str] = {
    "ok": "finished",
    "timeout": "timed out",
    "crash": "crashed",
    "oom": "ran out of memory",
    "diverged": "diverged (loss became NaN or inf)",
    "no_metric": "finished without reporting the metric",
    "bad_change": "was a bad change (the diff did not apply or touched a forbidden file)",
}
_OUTCOME_WORDS: dict[str, str] = {
    "keep": "kept as the new champion",
    "discard": "discarded",
    "crash": "discarded as a crash",
    "pending_confirmation": "pending confirmation on another seed",
}


def record_id(task: str, run_id: str, experiment_id: str) -> str:
    """The key a record is stored under. Including task and run keeps two runs whose experiment ids
    coincide (``e0001``) apart in a shared store, while a resumed run (same run, same experiment)
    overwrites its own record: writes stay idempotent."""
    return f"{task}/{run_id}/{experiment_id}"


def summarize_diff(diff: str, limit: int = 240) -> str:
    """A code change in words: the files and functions it touches and its first edited lines, so a
    similar code idea is recalled by meaning (``edits train.py (Block, forward): -nn.GELU() +nn.SiLU()``)."""
    files = sorted({line[6:].strip() for line in diff.splitlines() if line.startswith("+++ b/")})
    body = [ln for ln in diff.splitlines() if ln[:1] in (" ", "-", "+") and not ln.startswith(("---", "+++"))]
    scopes = list(dict.fromkeys(m.group(2) for ln in body if (m := _SCOPE.match(ln[1:]))))
    edits = " ".join(f"{ln[0]}{ln[1:].strip()}" for ln in body if ln[:1] in "+-" and ln[1:].strip())
    text = "edits " + (", ".join(files) if files else "the training script")
    if scopes:
        text += f" ({', '.join(scopes[:4])})"
    return f"{text}: {edits[:limit]}" if edits else text


_SCOPE = re.compile(r"\s*(def|class)\s+([A-Za-z_][A-Za-z0-9_]*)")


def describe_change(change: Change, increment: str | None = None) -> str:
    """The change in words: its description, else its knob settings; and for a code change a
    summary of ``increment`` (the code edit a proposal made), else of the whole diff."""
    code = increment if increment and increment.strip() else change.diff
    summary = summarize_diff(code) if code and code.strip() else ""
    if change.description.strip():
        return change.description.strip() + (f"; {summary}" if summary and increment else "")
    parts = [f"set {k} = {v}" for k, v in sorted(change.knobs.items())]
    if summary:
        parts.append(summary)
    return "; ".join(parts) or "no change (the champion configuration)"


class MemoryRecord(BaseModel):
    """One experiment as the memory keeps it: what was tried, why, what happened, and against what.

    Frozen and JSON-serializable. ``id`` (task/run/experiment) is the storage key; writing a record
    with the same key again replaces it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    run_id: str
    experiment_id: str
    team: str | None = None
    #: The knob or code area the experiment varied, and which way (``increase``, ``decrease``...).
    axis: str | None = None
    direction: str | None = None
    #: How the run ended (the executor's status).
    status: RunStatus
    #: What the lab decided (None while not yet decided).
    outcome: Outcome | None = None
    failure_class: FailureClass | None = None
    hypothesis: str = ""
    #: The change in words (see :func:`describe_change`).
    change: str = ""
    knobs: dict[str, KnobValue] = Field(default_factory=dict)
    metric_name: str = ""
    metric: float | None = None
    minimize: bool = True
    champion_metric: float | None = None
    #: ``metric - champion_metric`` (negative is better when minimizing).
    delta: float | None = None
    #: The last lines of the error or log of a failed run.
    error: str = ""
    timestamp: float = Field(default_factory=time.time)

    @model_validator(mode="before")
    @classmethod
    def _failure_from_status(cls, data: Any) -> Any:
        # A failed run or a discard is a dead end whatever the caller forgot to say: derive its class.
        if not isinstance(data, dict) or data.get("failure_class") is not None:
            return data
        if data.get("status") not in (None, "ok"):
            return {**data, "failure_class": data["status"]}
        if data.get("outcome") == "discard":
            delta, minimize = data.get("delta"), data.get("minimize", True)
            worse = delta is not None and (delta > 0 if minimize else delta < 0)
            return {**data, "failure_class": "regression" if worse else "no_gain"}
        return data

    @field_validator("error")
    @classmethod
    def _tail(cls, v: str) -> str:
        return v[-_ERROR_CHARS:]

    @property
    def id(self) -> str:
        """Storage key: ``task/run_id/experiment_id``."""
        return record_id(self.task, self.run_id, self.experiment_id)

    @property
    def failed(self) -> bool:
        """True for a run that failed or an experiment that did not improve (a dead end)."""
        return self.failure_class is not None or self.outcome in ("discard", "crash")

    @classmethod
    def from_result(
        cls,
        result: RunResult,
        *,
        task: str,
        run_id: str,
        team: str | None = None,
        axis: str | None = None,
        direction: str | None = None,
        hypothesis: str = "",
        champion_metric: float | None = None,
        minimize: bool = True,
        outcome: Outcome | None = None,
        increment: str | None = None,
    ) -> MemoryRecord:
        """Build the record of one experiment from its :class:`~autosci_graph.state.RunResult`.

        ``outcome`` defaults to ``crash`` for a failed run, else is left undecided unless given.
        ``increment`` is the code edit the proposal itself made (the run's diff also holds the
        champion's accepted code), summarized into the record's text.
        """
        delta = None
        if result.metric is not None and champion_metric is not None:
            delta = result.metric - champion_metric
        worse = delta is not None and (delta > 0 if minimize else delta < 0)
        failure: FailureClass | None = None
        if result.status != "ok":
            failure = result.status
        elif result.metric is None:
            failure = "no_metric"
        elif outcome == "discard" or (outcome is None and worse):
            failure = "regression" if worse else "no_gain"
        if outcome is None and failure in _RUN_FAILURES:
            outcome = "crash"
        error = result.error or ""
        if failure in _RUN_FAILURES and result.log_tail:
            error = f"{error}\n{result.log_tail}".strip()
        return cls(
            task=task, run_id=run_id, experiment_id=result.experiment_id, team=team, axis=axis,
            direction=direction, status=result.status, outcome=outcome, failure_class=failure,
            hypothesis=hypothesis, change=describe_change(result.change, increment), knobs=dict(result.change.knobs),
            metric_name=result.metric_name, metric=result.metric, minimize=minimize,
            champion_metric=champion_metric, delta=delta, error=error,
            timestamp=result.ended_at or time.time(),
        )

    def document(self) -> str:
        """The text that is embedded: task, what changed and what happened first (the model reads
        only 256 word pieces), then the hypothesis, then the error tail."""
        tags = ", ".join(t for t in (self.axis, self.direction) if t)
        # The task (and its metric) first: one store serves several tasks, and their names carry
        # meaning ("gb1-fitness", "val_bpb") that separates look-alike changes across them.
        text = f"Task {self.task}" + (f" ({self.metric_name})" if self.metric_name else "") + ". "
        text += f"Tried: {self.change}{f' ({tags})' if tags else ''}. "
        text += f"The run {_STATUS_WORDS[self.status]}"
        if self.outcome:
            text += f" and was {_OUTCOME_WORDS[self.outcome]}"
        text += "."
        if self.metric is not None:
            text += f" {self.metric_name or 'metric'} = {self.metric:.6g}"
            if self.delta is not None:
                better = self.delta < 0 if self.minimize else self.delta > 0
                text += f" ({self.delta:+.4g} vs champion, {'better' if better else 'worse' if self.delta else 'no change'})"
            text += "."
        if self.hypothesis:
            text += f" Hypothesis: {self.hypothesis.strip()}"
            text += "" if text.endswith(".") else "."
        if self.error:
            text += f" Error: {self.error.strip()[-300:]}"
        return text

    def to_json(self) -> str:
        """One JSON line (the export format)."""
        return self.model_dump_json()


class RecallHit(BaseModel):
    """A recalled record and its cosine similarity to the query (1 is identical)."""

    model_config = ConfigDict(frozen=True)

    record: MemoryRecord
    score: float


_FilterValue = str | list[str] | None


class MemoryFilter(BaseModel):
    """Metadata conditions on records, all of which must hold. A list means any of its values.

    Example: ``MemoryFilter(task="gpt-bpb", status=["oom", "crash"])``. Plain dicts with the same
    keys are accepted wherever a filter is (``where={"task": "gpt-bpb", "failed": True}``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: _FilterValue = None
    run_id: _FilterValue = None
    team: _FilterValue = None
    axis: _FilterValue = None
    direction: _FilterValue = None
    status: _FilterValue = None
    outcome: _FilterValue = None
    failure_class: _FilterValue = None
    #: True: only dead ends (failed runs and discards); False: only the rest.
    failed: bool | None = None

    @classmethod
    def coerce(cls, where: MemoryFilter | Mapping[str, Any] | None) -> MemoryFilter:
        """Accept a filter, a dict of its fields, or None (no condition)."""
        if where is None:
            return cls()
        if isinstance(where, MemoryFilter):
            return where
        return cls.model_validate(dict(where))

    def conditions(self) -> dict[str, list[str] | bool]:
        """The set conditions as ``field -> allowed values`` (or a bool for ``failed``)."""
        out: dict[str, list[str] | bool] = {}
        for name, value in self:
            if value is None:
                continue
            out[name] = value if isinstance(value, bool) else ([value] if isinstance(value, str) else list(value))
        return out

    def matches(self, record: MemoryRecord) -> bool:
        """Whether ``record`` satisfies every condition (the in-memory translation)."""
        for name, allowed in self.conditions().items():
            if name == "failed":
                if record.failed is not allowed:
                    return False
            elif getattr(record, name) not in allowed:  # type: ignore[operator]
                return False
        return True

    def with_default_task(self, task: str | None) -> MemoryFilter:
        """This filter, restricted to ``task`` unless it already names a task."""
        return self if task is None or self.task is not None else self.model_copy(update={"task": task})


def metadata_of(record: MemoryRecord) -> dict[str, str | int | float | bool]:
    """Flat scalar metadata for a vector store: the filterable fields plus the full record as JSON."""
    meta: dict[str, str | int | float | bool] = {"record": record.to_json(), "failed": record.failed, "timestamp": record.timestamp}
    for name in ("task", "run_id", "experiment_id", "team", "axis", "direction", "status", "outcome", "failure_class", "metric", "delta"):
        value = getattr(record, name)
        if value is not None:  # stores reject None; a missing key never matches an equality filter
            meta[name] = value
    return meta


def record_from_metadata(meta: Mapping[str, Any]) -> MemoryRecord:
    """Rebuild the record stored by :func:`metadata_of`."""
    return MemoryRecord.model_validate_json(str(meta["record"]))


def parse_jsonl(lines: Sequence[str], source: str) -> list[MemoryRecord]:
    """Parse exported JSON lines; a bad line raises ``ValueError`` naming the source and line."""
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(MemoryRecord.model_validate(json.loads(line)))
        except ValueError as exc:
            raise ValueError(f"{source}, line {n}: not a memory record ({str(exc).splitlines()[0]})") from exc
    return records
