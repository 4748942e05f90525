"""MemoryRecord: built from a RunResult, embedded text, filters, JSON lines."""

from __future__ import annotations

import pytest

from autosci_graph.memory.chroma import chroma_where
from autosci_graph.memory.record import MemoryFilter, MemoryRecord, describe_change, parse_jsonl
from autosci_graph.state import Change, RunResult


def _result(**kw: object) -> RunResult:
    base: dict[str, object] = dict(
        experiment_id="e7", status="ok", change=Change(knobs={"lr": 0.003}), seed=0, metric_name="val_bpb", ended_at=1234.0
    )
    base.update(kw)
    return RunResult.model_validate(base)


def test_from_result_of_a_crash_keeps_the_error_tail() -> None:
    res = _result(status="diverged", error="loss is nan", log_tail="step 10 loss 3.2\nstep 20 loss nan")
    rec = MemoryRecord.from_result(res, task="gpt", run_id="run1", team="t1", axis="lr", direction="increase", hypothesis="higher lr")
    assert rec.id == "gpt/run1/e7"
    assert (rec.status, rec.outcome, rec.failure_class, rec.failed) == ("diverged", "crash", "diverged", True)
    assert rec.error.startswith("loss is nan") and rec.error.endswith("loss nan")
    assert rec.change == "set lr = 0.003" and rec.knobs == {"lr": 0.003}
    assert rec.timestamp == 1234.0
    doc = rec.document()
    assert doc.startswith("Task gpt (val_bpb). Tried: set lr = 0.003 (lr, increase).")
    assert "diverged" in doc and "Hypothesis: higher lr" in doc and "loss nan" in doc


@pytest.mark.parametrize(
    ("metric", "minimize", "outcome", "failure", "failed"),
    [
        (1.30, True, "keep", None, False),
        (1.50, True, "discard", "regression", True),
        (1.39, True, "discard", "no_gain", True),  # better but not by enough: still a dead end
        (1.50, True, None, "regression", True),  # undecided yet already worse than the champion
        (0.70, False, None, None, False),  # maximizing: +0.3 is an improvement
        (1.30, True, "pending_confirmation", None, False),
    ],
)
def test_from_result_delta_and_failure_class(metric: float, minimize: bool, outcome: str | None, failure: str | None, failed: bool) -> None:
    champion = 1.40 if minimize else 0.40
    rec = MemoryRecord.from_result(
        _result(metric=metric), task="t", run_id="r", champion_metric=champion, minimize=minimize, outcome=outcome  # type: ignore[arg-type]
    )
    assert rec.delta == pytest.approx(metric - champion)
    assert rec.failure_class == failure
    assert rec.failed is failed
    assert rec.outcome == outcome


def test_ok_run_without_metric_is_a_no_metric_failure() -> None:
    rec = MemoryRecord.from_result(_result(metric=None, log_tail="done"), task="t", run_id="r")
    assert (rec.failure_class, rec.outcome, rec.error) == ("no_metric", "crash", "done")


def test_direct_records_derive_their_failure_class() -> None:
    assert MemoryRecord(task="t", run_id="r", experiment_id="e", status="oom").failure_class == "oom"
    discard = MemoryRecord(task="t", run_id="r", experiment_id="e", status="ok", outcome="discard", delta=0.1)
    assert discard.failure_class == "regression" and discard.failed


def test_error_is_kept_as_a_tail_and_records_are_frozen() -> None:
    rec = MemoryRecord(task="t", run_id="r", experiment_id="e", status="crash", error="x" * 5000 + "END")
    assert len(rec.error) == 600 and rec.error.endswith("END")
    with pytest.raises(ValueError):
        rec.task = "other"  # type: ignore[misc]


def test_describe_change() -> None:
    diff = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-a\n+b\n"
    assert describe_change(Change(description="  Use RoPE  ")) == "Use RoPE"
    assert describe_change(Change(knobs={"b": 2, "a": 1}, diff=diff)) == "set a = 1; set b = 2; edits train.py: -a +b"
    assert describe_change(Change()) == "no change (the champion configuration)"
    # A code change says which files and functions it touched and what it edited: the increment
    # the proposal made, not the champion's code it was stacked on.
    champion_code = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    increment = ("--- a/train.py\n+++ b/train.py\n@@ -10,2 +10,2 @@\n class Block(nn.Module):\n"
                 "-        self.act = nn.GELU()\n+        self.act = nn.SiLU()\n")
    text = describe_change(Change(diff=champion_code + increment, description="SiLU in the MLP"), increment)
    assert text == "SiLU in the MLP; edits train.py (Block): -self.act = nn.GELU() +self.act = nn.SiLU()"


def test_filter_matching_and_chroma_translation() -> None:
    rec = MemoryRecord(task="t", run_id="r", experiment_id="e", status="oom", axis="batch_size")
    assert MemoryFilter().matches(rec)
    assert MemoryFilter(task="t", status=["oom", "crash"], failed=True).matches(rec)
    assert not MemoryFilter(axis="lr").matches(rec)
    assert not MemoryFilter(failed=False).matches(rec)
    assert MemoryFilter.coerce({"task": "t"}) == MemoryFilter(task="t")
    assert MemoryFilter(team="a").with_default_task("t") == MemoryFilter(team="a", task="t")
    assert MemoryFilter(task="x").with_default_task("t").task == "x"
    assert chroma_where(MemoryFilter()) is None
    assert chroma_where(MemoryFilter(task="t")) == {"task": {"$eq": "t"}}
    assert chroma_where(MemoryFilter(task="t", status=["oom", "crash"], failed=True)) == {
        "$and": [{"task": {"$eq": "t"}}, {"status": {"$in": ["oom", "crash"]}}, {"failed": {"$eq": True}}]
    }
    with pytest.raises(ValueError):
        MemoryFilter.coerce({"colour": "red"})


def test_jsonl_round_trip_and_bad_line() -> None:
    rec = MemoryRecord(task="t", run_id="r", experiment_id="e", status="ok", metric=1.0, knobs={"lr": 0.1})
    assert parse_jsonl([rec.to_json(), ""], "f") == [rec]
    with pytest.raises(ValueError, match=r"f, line 2: not a memory record"):
        parse_jsonl([rec.to_json(), '{"task": "t"}'], "f")
