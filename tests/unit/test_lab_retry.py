"""The failed-round rules: what a round counts as, formation backoff, the wait, the stop message."""

from __future__ import annotations

from autosci_graph.lab.retry import (
    TurnFailure, failed_rounds_after, formation_delay, give_up_reason, retry_wait_s, round_outcome,
)

FAIL = TurnFailure(role="organize", kind="error", rotation=3, reason="HTTP 500: upstream model crashed")


def test_a_round_that_progressed_resets_the_count_even_with_failures() -> None:
    assert round_outcome([FAIL], progressed=True) == "progressed"
    assert failed_rounds_after(4, "progressed") == 0


def test_a_failed_round_counts_and_a_neutral_one_leaves_the_count() -> None:
    assert round_outcome([FAIL], progressed=False) == "failed"
    assert round_outcome([], progressed=False) == "neutral"
    assert failed_rounds_after(2, "failed") == 3
    assert failed_rounds_after(2, "neutral") == 2


def test_formation_backs_off_exponentially_up_to_the_cap() -> None:
    assert [formation_delay(k, cap=8) for k in range(0, 7)] == [0, 1, 2, 4, 8, 8, 8]
    assert formation_delay(3, cap=1) == 1


def test_the_wait_doubles_per_failed_round_and_is_capped() -> None:
    assert [retry_wait_s(k, 2.0, 10.0) for k in range(0, 5)] == [0.0, 2.0, 4.0, 8.0, 10.0]
    assert retry_wait_s(3, 0.0, 10.0) == 0.0


def test_the_lab_gives_up_only_at_the_limit_and_says_why() -> None:
    assert give_up_reason(4, 5, FAIL) is None
    reason = give_up_reason(5, 5, FAIL)
    assert reason is not None and reason.startswith("5 rounds in a row failed")
    assert "organize error: HTTP 500: upstream model crashed" in reason and "max_failed_rounds" in reason
