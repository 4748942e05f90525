"""The metric parser: three protocols, their order, and no input that makes it raise."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from autosci_graph.tools.metrics import parse_metrics


def test_summary_block() -> None:
    out = "step 10 loss 3.2\n---\nval_bpb: 1.2345\ntraining_seconds: 300.1\npeak_vram_mb: 0\n"
    p = parse_metrics(out, "val_bpb")
    assert (p.value, p.source) == (1.2345, "summary")
    assert p.metrics == {"val_bpb": 1.2345, "training_seconds": 300.1, "peak_vram_mb": 0.0}


def test_the_last_summary_block_counts_and_it_ends_at_the_first_other_line() -> None:
    out = "---\nval_bpb: 9.0\nnoise\n---\nval_bpb: 1.5\nthis line ends the block\nval_bpb: 7.0\n"
    assert parse_metrics(out, "val_bpb").value == 1.5


def test_summary_block_skips_non_numeric_values() -> None:
    p = parse_metrics("---\nval_bpb: 1.0\ndevice: cpu\nsteps: 12\n", "val_bpb")
    assert p.metrics == {"val_bpb": 1.0, "steps": 12.0}


def test_json_lines_give_the_value_and_the_curve() -> None:
    out = 'starting\n{"step": 1, "val_bpb": 3.0, "note": "x"}\n{"step": 2, "val_bpb": 2.5}\n{"step": 3, "loss": 1.0}\n'
    p = parse_metrics(out, "val_bpb")
    assert (p.value, p.source) == (2.5, "jsonl")
    assert p.curve == [{"step": 1.0, "val_bpb": 3.0}, {"step": 2.0, "val_bpb": 2.5}, {"step": 3.0, "loss": 1.0}]


def test_regex_is_the_last_resort() -> None:
    out = "epoch 1 valid rmse=0.91\nepoch 2 valid rmse=0.85\n"
    p = parse_metrics(out, "rmse", regex=r"valid rmse=([0-9.]+)")
    assert (p.value, p.source) == (0.85, "regex")
    assert parse_metrics(out, "rmse").value is None


def test_protocol_order_summary_then_json_then_regex() -> None:
    out = '{"score": 2.0}\nscore=3.0\n---\nscore: 1.0\n'
    assert parse_metrics(out, "score", regex=r"score=([0-9.]+)").source == "summary"
    out = '{"score": 2.0}\nscore=3.0\n'
    assert parse_metrics(out, "score", regex=r"score=([0-9.]+)").value == 2.0


def test_nan_and_inf_are_reported_not_hidden() -> None:
    p = parse_metrics("---\nval_bpb: nan\n", "val_bpb")
    assert p.value is not None and math.isnan(p.value)
    assert "val_bpb" not in p.metrics  # metrics hold finite numbers only (they go to JSON)
    p = parse_metrics('{"step": 1, "loss": Infinity}\n', "val_bpb")
    assert p.nonfinite_in_curve and p.curve == [{"step": 1.0}]


def test_bad_regex_and_crlf_and_bytes() -> None:
    assert parse_metrics("x", "m", regex="([unclosed").value is None
    assert parse_metrics(b"---\r\nm: 2\r\n", "m").value == 2.0
    assert parse_metrics(b"\xff\xfe---\n---\nm: 4\n\xff", "m").value == 4.0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    p = parse_metrics(data, "val_bpb", regex=r"val_bpb=(\S+)")
    assert p.value is None or isinstance(p.value, float)
    assert all(math.isfinite(v) for v in p.metrics.values())


_fragments = st.sampled_from(["---", "val_bpb: 1.5", "val_bpb: nan", '{"val_bpb": 2}', '{"a": [1, {"b": NaN}]}', "{", "}", "val_bpb=3", ":", "\x00", "\r", "1e999", '{"x": 1e999}', "-" * 3 + " "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_fragments, st.text(max_size=30)), max_size=40))
def test_adversarial_text_never_raises(parts: list[str]) -> None:
    p = parse_metrics("\n".join(parts), "val_bpb", regex=r"val_bpb=(\S+)")
    assert all(math.isfinite(v) for point in p.curve for v in point.values())
