"""The automatic critique rules (autosci_graph/lab/critique.py): one test group per rejection."""

from __future__ import annotations

import pytest
from lab_helpers import champion, dead_end, entry, make_synth_task, proposal, view

from autosci_graph.lab.changes import context_key
from autosci_graph.lab.critique import CritiqueRules, auto_review, refutes
from autosci_graph.scientists.base import RecalledMemory
from autosci_graph.state import Change, DeadEnd

TASK = make_synth_task()
#: Rules with the repeat rule switched off, to test the other rules in isolation.
NO_REPEAT = CritiqueRules(max_recent_repeats=1000)


def rule_of(p, v, recalled=None, rules=CritiqueRules()):  # type: ignore[no-untyped-def]
    review = auto_review(p, v, recalled, rules)
    if review is not None:
        assert review.approve is False and review.reviewer == "rules" and review.reason.strip()
        assert review.proposal_id == p.proposal_id
    return None if review is None else review.rule


def test_a_clean_proposal_passes() -> None:
    assert auto_review(proposal("lr", "increase", {"lr": 0.002}), view(TASK)) is None


def test_thresholds_default_to_the_authors() -> None:
    r = CritiqueRules()
    assert (r.recent_window, r.max_recent_repeats, r.dead_end_discards) == (10, 3, 3)


# -- missing tags ------------------------------------------------------------------------------


@pytest.mark.parametrize("axis,direction", [(None, "increase"), ("lr", None), ("", "increase"), (None, None)])
def test_missing_tags_rejected(axis: str | None, direction: str | None) -> None:
    assert rule_of(proposal(axis, direction, {"lr": 0.002}), view(TASK)) == "missing_tags"


def test_missing_tags_is_checked_before_anything_else() -> None:
    # Untagged *and* empty *and* invalid: the tag rule names the first problem.
    assert rule_of(proposal(None, None, {"nope": 1}), view(TASK)) == "missing_tags"


# -- empty change ------------------------------------------------------------------------------


def test_empty_change_rejected() -> None:
    assert rule_of(proposal("lr", "increase", {}), view(TASK)) == "empty_change"
    p = proposal("lr", "increase", {}).model_copy(update={"change": Change(diff="   \n")})
    assert rule_of(p, view(TASK)) == "empty_change"


def test_a_change_that_restates_the_champion_is_empty() -> None:
    # Setting a knob to the value the champion already has runs the champion again as an
    # "exploration": a free lucky-seed ticket. It changes nothing, so it is rejected as empty.
    v = view(TASK, champ=champion(TASK, lr=0.004))
    assert rule_of(proposal("lr", "increase", {"lr": 0.004}), v) == "empty_change"
    assert rule_of(proposal("lr", "increase", {"lr": 1e-3}), view(TASK)) == "empty_change"  # the default champion
    assert rule_of(proposal("lr", "increase", {"lr": 0.005}), v) is None


def test_a_diff_alone_is_not_empty() -> None:
    p = proposal("code", "code", {}).model_copy(update={"change": Change(diff="--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")})
    assert rule_of(p, view(TASK)) is None


# -- invalid knob ------------------------------------------------------------------------------


@pytest.mark.parametrize("knobs", [{"momentum": 0.9}, {"lr": 5.0}, {"width": 4}, {"act": "swish"}])
def test_changes_outside_the_search_space_rejected(knobs: dict) -> None:
    axis = next(iter(knobs))
    assert rule_of(proposal(axis, "increase", knobs), view(TASK)) == "invalid_knob"


# -- duplicate ---------------------------------------------------------------------------------


def test_exact_configuration_already_explored_is_a_duplicate() -> None:
    log = [entry(0, "lr", "increase", {"lr": 0.002})]
    assert rule_of(proposal("lr", "increase", {"lr": 0.002}), view(TASK, log)) == "duplicate"
    # Tagged differently, same configuration: still a duplicate.
    assert rule_of(proposal("dropout", "set", {"lr": 0.002}), view(TASK, log)) == "duplicate"
    assert rule_of(proposal("lr", "increase", {"lr": 0.003}), view(TASK, log)) is None


def test_duplicate_compares_full_configurations_on_the_current_champion() -> None:
    # lr=0.002 ran on the default champion; on a champion with another width it is a new point.
    log = [entry(0, "lr", "increase", {"lr": 0.002})]
    v = view(TASK, log, champ=champion(TASK, width=64))
    assert rule_of(proposal("lr", "increase", {"lr": 0.002}), v) is None


def test_a_change_the_task_refused_to_apply_is_not_a_duplicate() -> None:
    log = [entry(0, "lr", "increase", {"lr": 0.002}, status="bad_change", outcome="crash", gain=None)]
    assert rule_of(proposal("lr", "increase", {"lr": 0.002}), view(TASK, log)) is None


def test_configuration_already_queued_is_a_duplicate() -> None:
    queued = proposal("lr", "increase", {"lr": 0.002}, pid="queued")
    assert rule_of(proposal("lr", "increase", {"lr": 0.002}), view(TASK, in_flight=[queued])) == "duplicate"


# -- over-mined --------------------------------------------------------------------------------


def test_family_proposed_three_times_recently_is_over_mined() -> None:
    log = [entry(i, "lr", "increase", {"lr": 0.002 + i * 0.001}, gain=0.01) for i in range(3)]
    assert rule_of(proposal("lr", "increase", {"lr": 0.009}), view(TASK, log)) == "over_mined"
    # Two are not enough, and another direction of the same axis is another family.
    assert rule_of(proposal("lr", "increase", {"lr": 0.009}), view(TASK, log[:2])) is None
    assert rule_of(proposal("lr", "decrease", {"lr": 0.0005}), view(TASK, log)) is None


def test_in_flight_proposals_count_as_recent() -> None:
    log = [entry(i, "lr", "increase", {"lr": 0.002 + i * 0.001}, gain=0.01) for i in range(2)]
    queued = proposal("lr", "increase", {"lr": 0.007}, pid="q")
    assert rule_of(proposal("lr", "increase", {"lr": 0.009}), view(TASK, log, in_flight=[queued])) == "over_mined"


def test_family_cools_down_after_the_recent_window() -> None:
    old = [entry(i, "lr", "increase", {"lr": 0.002 + i * 0.001}, gain=0.01) for i in range(3)]
    # Later runs (repeat runs of the champion count too) push them out of the 10-run window.
    later = [entry(3 + i, None, None, {}, kind="noise", outcome="remeasure", gain=None, seed=10 + i) for i in range(8)]
    assert rule_of(proposal("lr", "increase", {"lr": 0.009}), view(TASK, old + later[:7])) == "over_mined"
    assert rule_of(proposal("lr", "increase", {"lr": 0.009}), view(TASK, old + later)) is None


# -- dead end ----------------------------------------------------------------------------------


def test_three_refuting_discards_and_no_keep_make_a_dead_end() -> None:
    log = [entry(i, "lr", "increase", {"lr": 0.002 + i * 0.001}, gain=-0.1) for i in range(3)]
    assert rule_of(proposal("lr", "increase", {"lr": 0.009}), view(TASK, log), rules=NO_REPEAT) == "dead_end"
    assert rule_of(proposal("lr", "increase", {"lr": 0.009}), view(TASK, log[:2]), rules=NO_REPEAT) is None


def test_crashes_refute_a_family() -> None:
    log = [entry(i, "lr", "increase", {"lr": 0.002 + i * 0.001}, outcome="crash", status="diverged", gain=None) for i in range(3)]
    assert rule_of(proposal("lr", "increase", {"lr": 0.009}), view(TASK, log), rules=NO_REPEAT) == "dead_end"


def test_discarded_noise_level_gains_do_not_build_a_dead_end() -> None:
    log = [entry(i, "lr", "increase", {"lr": 0.002 + i * 0.001}, gain=+0.01) for i in range(3)]
    assert rule_of(proposal("lr", "increase", {"lr": 0.009}), view(TASK, log), rules=NO_REPEAT) is None
    # Two refutes and one noise-level gain: still short of three refutes.
    log[0] = entry(0, "lr", "increase", {"lr": 0.002}, gain=-0.2)
    log[1] = entry(1, "lr", "increase", {"lr": 0.003}, gain=0.0)
    assert rule_of(proposal("lr", "increase", {"lr": 0.009}), view(TASK, log), rules=NO_REPEAT) is None


@pytest.mark.parametrize("keep_kind", ["explore", "confirm"])
def test_dead_ends_count_only_since_the_last_keep(keep_kind: str) -> None:
    before = [entry(i, "lr", "increase", {"lr": 0.002 + i * 0.001}, gain=-0.1) for i in range(3)]
    keep = entry(3, "width", "increase", {"width": 64}, outcome="keep", gain=0.5, kind=keep_kind)
    after = [entry(4 + i, "lr", "increase", {"lr": 0.02 + i * 0.01}, gain=-0.1) for i in range(2)]
    v = view(TASK, before + [keep] + after)
    assert rule_of(proposal("lr", "increase", {"lr": 0.09}), v, rules=NO_REPEAT) is None
    third = entry(6, "lr", "increase", {"lr": 0.05}, gain=-0.1)
    v = view(TASK, before + [keep] + after + [third])
    assert rule_of(proposal("lr", "increase", {"lr": 0.09}), v, rules=NO_REPEAT) == "dead_end"


def test_refutes() -> None:
    assert refutes(entry(0, outcome="crash", gain=None, status="crash"))
    assert refutes(entry(0, outcome="discard", gain=-0.1))
    assert refutes(entry(0, outcome="discard", gain=0.0))
    assert refutes(entry(0, outcome="discard", gain=None))
    assert not refutes(entry(0, outcome="discard", gain=0.01))
    assert not refutes(entry(0, outcome="keep", gain=0.5))
    assert not refutes(entry(0, outcome="pending_confirmation", gain=-0.5))


def test_a_value_at_or_beyond_a_recorded_failure_is_in_the_failed_range() -> None:
    # Champion lr=1e-3; lr=1e-2 failed. Going as far or further the same way is rejected.
    v = view(TASK, dead_ends=[dead_end("lr", 0.01)])
    assert rule_of(proposal("lr", "increase", {"lr": 0.01}), v) == "failed_range"
    assert rule_of(proposal("lr", "increase", {"lr": 0.05}), v) == "failed_range"
    assert rule_of(proposal("lr", "increase", {"lr": 0.005}), v) is None  # short of the failure
    assert rule_of(proposal("lr", "decrease", {"lr": 0.0005}), v) is None  # the other way
    assert rule_of(proposal("width", "increase", {"width": 64}), v) is None  # another axis


def test_failed_range_on_the_decreasing_side() -> None:
    v = view(TASK, dead_ends=[dead_end("dropout", 0.1, direction="decrease")])
    assert rule_of(proposal("dropout", "decrease", {"dropout": 0.05}), v) == "failed_range"
    assert rule_of(proposal("dropout", "decrease", {"dropout": 0.2}), v) is None


def test_what_is_different_lets_a_proposal_through() -> None:
    v = view(TASK, dead_ends=[dead_end("lr", 0.01)])
    p = proposal("lr", "increase", {"lr": 0.02}, what_is_different="warmup is now 10x longer, which the failure lacked")
    assert rule_of(p, v) is None
    assert rule_of(proposal("lr", "increase", {"lr": 0.02}, what_is_different="   "), v) == "failed_range"


def _placed(axis: str, value: object, outcome: str, where: dict[str, object]) -> DeadEnd:
    """A dead end on ``axis`` recorded with the context of a run at ``where`` (the champion's
    other knobs at the time)."""
    d = dead_end(axis, value)
    return d.model_copy(update={"outcome": outcome, "context": context_key(TASK, Change(knobs={**TASK.default_config(), **where}), axis)})


LOCAL = CritiqueRules(local_failed_ranges=True)


def test_a_measured_loss_binds_its_range_only_where_the_other_knobs_were() -> None:
    # lr=1e-2 lost while width was 32 (the default). From the same base it is still a failed range;
    # once width has moved to 128, the same lr is a new question (knobs interact).
    lost_here = view(TASK, dead_ends=[_placed("lr", 0.01, "discard", {})])
    assert rule_of(proposal("lr", "increase", {"lr": 0.02}), lost_here, rules=LOCAL) == "failed_range"
    moved = view(TASK, champ=champion(TASK, width=128), dead_ends=[_placed("lr", 0.01, "discard", {})])
    assert rule_of(proposal("lr", "increase", {"lr": 0.02}), moved, rules=LOCAL) is None
    assert rule_of(proposal("lr", "increase", {"lr": 0.02}), moved) == "failed_range"  # off by default
    # The lr value itself is not part of the context: a loss at lr=1e-2 binds lr=5e-2 from the same base.
    assert rule_of(proposal("lr", "increase", {"lr": 0.05}), lost_here, rules=LOCAL) == "failed_range"


def test_a_crash_binds_its_range_whatever_the_other_knobs() -> None:
    moved = view(TASK, champ=champion(TASK, width=128), dead_ends=[_placed("lr", 0.01, "crash", {})])
    assert rule_of(proposal("lr", "increase", {"lr": 0.02}), moved, rules=LOCAL) == "failed_range"


def test_a_dead_end_without_a_recorded_context_binds_everywhere() -> None:
    # Registries written before contexts were recorded: the old, conservative rule.
    moved = view(TASK, champ=champion(TASK, width=128), dead_ends=[dead_end("lr", 0.01)])
    assert rule_of(proposal("lr", "increase", {"lr": 0.02}), moved, rules=LOCAL) == "failed_range"


def test_a_categorical_value_that_failed_is_rejected() -> None:
    v = view(TASK, dead_ends=[dead_end("act", "relu", direction="set")])
    assert rule_of(proposal("act", "set", {"act": "relu"}), v) == "failed_range"
    assert rule_of(proposal("act", "set", {"act": "gelu"}), v) is None


def recalled(score: float, *, outcome: str = "discard", axis: str = "lr", value: float = 0.01) -> RecalledMemory:
    return RecalledMemory(experiment_id="old-7", text=f"{axis}={value} diverged", outcome=outcome, status="diverged",
                          axis=axis, direction="increase", knobs={axis: value}, score=score)


def test_a_recalled_similar_failure_counts_as_a_failed_range() -> None:
    p = proposal("lr", "increase", {"lr": 0.02})
    assert rule_of(p, view(TASK), [recalled(0.9)]) == "failed_range"
    assert rule_of(p, view(TASK), [recalled(0.5)]) is None  # not similar enough
    assert rule_of(p, view(TASK), [recalled(0.9, outcome="keep")]) is None  # a success is not a failure
    assert rule_of(p, view(TASK), [recalled(0.9, axis="dropout", value=0.45)]) is None  # another axis
    assert rule_of(proposal("lr", "increase", {"lr": 0.005}), view(TASK), [recalled(0.9)]) is None  # short of it
    p_diff = proposal("lr", "increase", {"lr": 0.02}, what_is_different="the recalled run had no warmup")
    assert rule_of(p_diff, view(TASK), [recalled(0.9)]) is None


def test_similar_failure_threshold_is_a_setting() -> None:
    p = proposal("lr", "increase", {"lr": 0.02})
    assert rule_of(p, view(TASK), [recalled(0.5)], rules=CritiqueRules(similar_failure_score=0.4)) == "failed_range"


def test_a_proposal_against_the_team_hypothesis_needs_a_falsification_tag() -> None:
    from lab_helpers import make_synth_task, proposal, team, view

    from autosci_graph.state import Hypothesis

    task = make_synth_task()
    t = team(axes=("lr",)).model_copy(update={"hypothesis": Hypothesis(
        statement="increasing lr improves loss", prediction="p", falsification="f", axes=["lr"], directions={"lr": "increase"})})
    v = view(task, teams=[t])
    back = proposal("lr", "decrease", {"lr": 1e-4})
    review = auto_review(back, v)
    assert review is not None and review.rule == "contradicts_hypothesis" and "falsification" in review.reason
    assert auto_review(back.model_copy(update={"falsification_test": True}), v) is None
    assert auto_review(proposal("lr", "increase", {"lr": 1e-2}), v) is None


def test_a_bold_tag_on_a_small_step_is_rejected() -> None:
    from lab_helpers import make_synth_task, proposal, view

    task = make_synth_task()  # lr in [1e-4, 1] on a log scale: 4 decades
    small = proposal("lr", "increase", {"lr": 1.2e-3}, bold=True)  # 2% of the log range
    review = auto_review(small, view(task))
    assert review is not None and review.rule == "bold_too_small"
    assert auto_review(small.model_copy(update={"bold": False}), view(task)) is None
    assert auto_review(proposal("lr", "increase", {"lr": 1e-2}, bold=True), view(task)) is None  # a decade: 25%


def test_a_code_idea_like_a_remembered_failure_is_rejected() -> None:
    from lab_helpers import make_synth_task, view

    from autosci_graph.scientists.base import RecalledMemory
    from autosci_graph.state import Change, Proposal

    task = make_synth_task()
    diff = "--- a/train.py\n+++ b/train.py\n@@\n-act = nn.GELU()\n+act = nn.SiLU()\n"
    p = Proposal(proposal_id="p", author="experimenter-1", team="t1", axis="code:activation", direction="code",
                 change=Change(diff=diff), rationale="SiLU in the MLP")
    failed = RecalledMemory(experiment_id="old-3", text="Tried: SiLU in the MLP; edits train.py (Block): -nn.GELU() +nn.SiLU()",
                            outcome="discard", axis="code:activation", direction="code", score=0.93)
    review = auto_review(p, view(task), [failed])
    assert review is not None and review.rule == "failed_range" and "old-3" in review.reason
    assert auto_review(p.model_copy(update={"what_is_different": "now with a tuned lr"}), view(task), [failed]) is None
    assert auto_review(p, view(task), [failed.model_copy(update={"score": 0.5})]) is None  # not similar enough
