"""Team life cycle (autosci_graph/lab/teams.py): formation by vote, falsification, regroup triggers."""

from __future__ import annotations

from lab_helpers import entry, team

from autosci_graph.graphs.context import LabSettings
from autosci_graph.lab.teams import (
    branch_holders,
    choose_drafts,
    exhausted_axes,
    is_falsified,
    members_for,
    new_team,
    regroup_reason,
    update_counters,
)
from autosci_graph.scientists.base import HypothesisDraft, OrganizeReply

#: 3 teams; falsified at 3 rotations + 3 refutes; regroup at 3 rotations or 8 discards on <= 3 axes. The
#: minimum life and the regroup cool-down have tests of their own; the trigger tests leave them out.
S = LabSettings(team_min_life=0, regroup_cooldown=0).team_rules


def draft(*axes: str, promise: float = 0.5, author: str = "analyst-1") -> HypothesisDraft:
    return HypothesisDraft(statement=f"{axes[0]} is mis-set at the champion", prediction="beats the champion",
                           falsification="3 refutes and no keep", axes=list(axes), promise=promise, author=author)


# -- falsification -----------------------------------------------------------------------------


def test_falsified_needs_both_rotations_without_support_and_refutes() -> None:
    assert is_falsified(team(rotations_since_support=3, refute=3, experiments=3), S)
    assert is_falsified(team(rotations_since_support=5, refute=4, support=1, experiments=5), S)
    assert not is_falsified(team(rotations_since_support=2, refute=3), S)
    assert not is_falsified(team(rotations_since_support=3, refute=2), S)
    assert is_falsified(team(rotations_since_support=1, refute=1, experiments=1),
                        LabSettings(falsify_rotations=1, falsify_refutes=1, team_min_life=0).team_rules)


def test_counters_refuting_discard_on_the_hypothesis_axis() -> None:
    t = update_counters(team(axes=("lr",)), entry(0, "lr", "increase", {"lr": 0.01}, gain=-0.1))
    assert (t.support, t.refute, t.rotations, t.rotations_since_support, t.experiments) == (0, 1, 1, 1, 1)


def test_counters_keep_supports_and_resets_the_rotation_count() -> None:
    t = team(axes=("lr",), refute=2, rotations=4, rotations_since_support=4, experiments=4)
    t = update_counters(t, entry(5, "lr", "increase", {"lr": 0.01}, outcome="keep", gain=0.3))
    assert (t.support, t.refute, t.rotations, t.rotations_since_support) == (1, 2, 5, 0)
    assert not is_falsified(t, S)


def test_counters_only_the_hypothesis_axes_support_or_refute() -> None:
    t = team(axes=("lr",))
    t = update_counters(t, entry(0, "width", "increase", {"width": 64}, outcome="keep", gain=0.3))
    t = update_counters(t, entry(1, "width", "decrease", {"width": 16}, gain=-0.3))
    assert (t.support, t.refute, t.rotations, t.rotations_since_support) == (0, 0, 2, 2)


def test_counters_noise_level_gain_and_crash() -> None:
    t = update_counters(team(axes=("lr",)), entry(0, "lr", "increase", {"lr": 0.01}, gain=0.01))
    assert t.refute == 0  # a discarded noise-level gain is not evidence against the hypothesis
    t = update_counters(t, entry(1, "lr", "increase", {"lr": 0.02}, outcome="crash", gain=None, status="diverged"))
    assert t.refute == 1 and t.rotations_since_support == 2


def test_three_refuting_rotations_falsify_a_team() -> None:
    t = team(axes=("lr",))
    for i in range(3):
        assert not is_falsified(t, S)
        t = update_counters(t, entry(i, "lr", "increase", {"lr": 0.01 * (i + 1)}, gain=-0.1))
    assert is_falsified(t, S)


def test_a_team_is_not_falsified_before_its_minimum_life() -> None:
    s = LabSettings(team_min_life=4).team_rules
    t = team(axes=("lr",))
    for i in range(3):
        t = update_counters(t, entry(i, "lr", "increase", {"lr": 0.01 * (i + 1)}, gain=-0.1))
    assert t.refute == 3 and not is_falsified(t, s)  # three refutes, but only three experiments
    t = update_counters(t, entry(3, "lr", "increase", {"lr": 0.05}, gain=-0.1))
    assert is_falsified(t, s)


def test_a_regroup_waits_out_its_cool_down() -> None:
    s = LabSettings(regroup_cooldown=12).team_rules
    assert regroup_reason(explores(11), 0, 3, s) is None  # the no-keep window (9) is past, the cool-down is not
    why = regroup_reason(explores(12), 0, 3, s)
    assert why is not None and "no keep" in why


# -- regroup triggers --------------------------------------------------------------------------


def explores(n: int, start: int = 0, axes: tuple[str, ...] = ("lr", "width", "dropout", "act"), **kw) -> list:  # type: ignore[no-untyped-def]
    return [entry(start + i, axes[i % len(axes)], "increase", {axes[i % len(axes)]: i}, **kw) for i in range(n)]


def test_no_keep_for_three_rotations_triggers_a_regroup() -> None:
    # 3 rotations of 3 teams: 9 explorations without a keep.
    assert regroup_reason(explores(8), 0, 3, S) is None
    why = regroup_reason(explores(9), 0, 3, S)
    assert why is not None and "no keep" in why
    # With 2 teams, 6 are enough.
    assert regroup_reason(explores(6), 0, 2, S) is not None


def test_a_recent_keep_prevents_the_regroup() -> None:
    log = explores(8) + [entry(8, "lr", "increase", {"lr": 0.5}, outcome="keep", gain=1.0)]
    assert regroup_reason(log, 0, 3, S) is None


def test_a_keep_confirmed_on_another_seed_counts_as_a_keep() -> None:
    # The exploration is logged as a near miss; its confirmation run is the keep.
    log = explores(7) + [entry(7, "lr", "increase", {"lr": 0.5}, outcome="pending_confirmation", gain=0.1),
                         entry(8, "lr", "increase", {"lr": 0.5}, outcome="keep", gain=0.1, kind="confirm", seed=1),
                         entry(9, "width", "increase", {"width": 100}, gain=-0.1)]
    assert regroup_reason(log, 0, 3, S) is None


def test_only_explorations_since_the_last_formation_count() -> None:
    assert regroup_reason(explores(20), 12, 3, S) is None
    assert regroup_reason(explores(21), 12, 3, S) is not None
    assert regroup_reason([], 0, 3, S) is None


def test_discards_concentrated_on_few_axes_trigger_a_regroup() -> None:
    # A keep 9 back keeps the no-keep trigger quiet; the last 8 discards fall on 2 axes.
    s = LabSettings(regroup_rotations_without_keep=10, regroup_cooldown=0).team_rules
    log = [entry(0, "act", "set", {"act": "gelu"}, outcome="keep", gain=0.5)] + explores(8, start=1, axes=("lr", "width"))
    why = regroup_reason(log, 0, 3, s)
    assert why is not None and "2 axes" in why
    assert regroup_reason(log[:-1], 0, 3, s) is None  # only 7 discards
    spread = [log[0]] + explores(8, start=1, axes=("lr", "width", "dropout", "act"))
    assert regroup_reason(spread, 0, 3, s) is None  # 8 discards over 4 axes


# -- formation ---------------------------------------------------------------------------------


def test_choose_drafts_follows_the_votes() -> None:
    reply = OrganizeReply(hypotheses=[draft("lr"), draft("width"), draft("dropout")], votes=[2, 2, 1, 0, 2])
    chosen = choose_drafts(reply, 2, ["lr", "width", "dropout"], set(), set())
    assert [d.axes[0] for d in chosen] == ["dropout", "lr"]  # 3 votes, then 1 vote beats 1 by promise/order


def test_every_new_team_owns_a_never_tested_axis_while_any_is_left() -> None:
    # The most voted drafts touch only tested axes; they lose to drafts owning untested ones.
    reply = OrganizeReply(hypotheses=[draft("lr"), draft("width"), draft("dropout", "lr"), draft("act")],
                          votes=[0, 0, 0, 1, 1, 2, 3])
    chosen = choose_drafts(reply, 2, ["dropout", "act"], set(), set())
    assert [d.axes for d in chosen] == [["dropout", "lr"], ["act"]]
    for d in chosen:
        assert set(d.axes) & {"dropout", "act"}


def test_two_new_teams_never_share_an_untested_axis_claim() -> None:
    reply = OrganizeReply(hypotheses=[draft("act", "lr"), draft("act", "width"), draft("dropout")], votes=[0, 1, 2])
    chosen = choose_drafts(reply, 2, ["act", "dropout"], set(), set())
    assert [d.axes[0] for d in chosen] == ["act", "dropout"]


def test_no_team_inherits_an_exhausted_axis() -> None:
    reply = OrganizeReply(hypotheses=[draft("lr", "width"), draft("lr"), draft("dropout")], votes=[0, 0, 1, 2])
    chosen = choose_drafts(reply, 2, [], {"lr"}, set())
    assert [d.axes for d in chosen] == [["width"], ["dropout"]]
    assert all("lr" not in d.axes for d in chosen)


def test_no_new_team_takes_a_surviving_team_primary_axis() -> None:
    reply = OrganizeReply(hypotheses=[draft("lr"), draft("width")], votes=[0])
    assert [d.axes[0] for d in choose_drafts(reply, 1, [], set(), {"lr"})] == ["width"]


def test_when_too_strict_the_best_remaining_drafts_fill_in_once_each() -> None:
    # Only one draft owns the one untested axis; the second team is filled from the rest, and a
    # draft already chosen (with its exhausted axis stripped) is not chosen a second time.
    reply = OrganizeReply(hypotheses=[draft("width", "act"), draft("lr")], votes=[0, 0, 1])
    chosen = choose_drafts(reply, 2, ["act"], {"width"}, set())
    assert [d.axes for d in chosen] == [["act"], ["lr"]]
    only = OrganizeReply(hypotheses=[draft("width", "act")], votes=[0])
    assert len(choose_drafts(only, 2, ["act"], {"width"}, set())) == 1
    # Filling in never hands a team an exhausted axis, nor a primary axis another team owns:
    # running short is better than two teams repeating each other on one axis.
    crowded = OrganizeReply(hypotheses=[draft("lr"), draft("lr", "width")], votes=[0])
    assert [d.axes for d in choose_drafts(crowded, 2, [], {"width"}, set())] == [["lr"]]
    # A draft led by a taken axis is re-led by one of its free axes.
    led = OrganizeReply(hypotheses=[draft("lr"), draft("lr", "depth")], votes=[0])
    assert [d.axes for d in choose_drafts(led, 2, [], set(), set())] == [["lr"], ["depth", "lr"]]


def test_exhausted_axes() -> None:
    s = S  # dead end at 3 discards per direction
    lr_up = [entry(i, "lr", "increase", {"lr": 0.1 * (i + 1)}) for i in range(3)]
    lr_down = [entry(3 + i, "lr", "decrease", {"lr": 1e-4 * (i + 1)}) for i in range(3)]
    assert exhausted_axes(lr_up, s) == set()  # one direction left untried
    assert exhausted_axes(lr_up + lr_down, s) == {"lr"}
    assert exhausted_axes(lr_up + lr_down[:2], s) == set()
    keep = entry(6, "lr", "decrease", {"lr": 5e-4}, outcome="keep", gain=0.2)
    assert exhausted_axes(lr_up + lr_down + [keep], s) == set()
    confirmed = entry(6, "lr", "decrease", {"lr": 5e-4}, outcome="keep", gain=0.2, kind="confirm")
    assert exhausted_axes(lr_up + lr_down + [confirmed], s) == set()
    act = [entry(i, "act", "set", {"act": "relu"}) for i in range(6)]
    assert exhausted_axes(act, s) == {"act"}


def test_new_team_and_members() -> None:
    s = LabSettings(n_teams=2).team_rules
    assert members_for(0, s) == ["analyst-1", "experimenter-1", "experimenter-2"]
    assert members_for(1, s) == ["analyst-2", "experimenter-3", "experimenter-4"]
    t = new_team(draft("lr", "width"), "t7", members_for(1, s), 12)
    assert t.team_id == "t7" and t.status == "active" and t.hypothesis.axes == ["lr", "width"]
    assert t.formed_at_experiment == 12 and (t.support, t.refute, t.rotations) == (0, 0, 0)
    assert t.hypothesis.falsification and t.hypothesis.prediction


def test_free_experimenters_are_taken_one_per_team_in_turn_and_busy_ones_skipped() -> None:
    a, b = team("t1"), team("t2").model_copy(update={"members": ["analyst-2", "experimenter-3", "experimenter-4"]})
    plan = [(t.team_id, h) for t, h in branch_holders([a, b], busy={"experimenter-3"}, rotation=1)]
    # Rotation 1: experimenter-2 has t1's turn; t2's turn-holder is busy, so its other one goes.
    assert plan == [("t1", "experimenter-2"), ("t2", "experimenter-4"), ("t1", "experimenter-1")]
    assert branch_holders([a], busy={"experimenter-1", "experimenter-2"}, rotation=0) == []
