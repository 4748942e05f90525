"""SearchScientist (autosci_graph/scientists/search.py) and the scientist interface (scientists/base.py)."""

from __future__ import annotations

import math

import pytest
from lab_helpers import champion, dead_end, entry, make_synth_task, proposal, team, view
from pydantic import ValidationError

from autosci_graph.scientists.base import AxisEffect, HypothesisDraft, Knowledge, RecalledMemory, ReviewDraft, Scientist
from autosci_graph.scientists.rules import auto_review
from autosci_graph.scientists.search import SearchScientist, _move
from autosci_graph.state import Proposal

TASK = make_synth_task()
AGENTS = ["analyst-1", "analyst-2", "experimenter-1", "experimenter-2", "experimenter-3", "experimenter-4"]
SCI = SearchScientist()


def as_proposal(d, i: int = 0) -> Proposal:  # type: ignore[no-untyped-def]
    return proposal(d.axis, d.direction, d.knobs, pid=f"d{i}", what_is_different=d.what_is_different, bold=d.bold)


def effects(**by_dir: dict[str, float]) -> Knowledge:
    return Knowledge(noise_sigma=0.01, noise_samples=3, untested_axes=[a for a in TASK.knobs if a not in by_dir],
                     effects={a: AxisEffect(axis=a, tried=len(d), by_direction=d, best_gain=max(d.values())) for a, d in by_dir.items()})


# -- the interface -----------------------------------------------------------------------------


def test_scientist_is_abstract_and_describes_itself() -> None:
    with pytest.raises(TypeError):
        Scientist()  # type: ignore[abstract]
    assert SCI.describe() == {"name": "search", "class": "SearchScientist"}


def test_drafts_are_actions_in_a_schema_not_prose() -> None:
    with pytest.raises(ValidationError):
        HypothesisDraft(statement="tune lr", prediction="better", falsification="no", axes=[])  # no axis, too short
    with pytest.raises(ValidationError):
        ReviewDraft(approve=True, reason="")  # a review must give a reason


# -- _move -------------------------------------------------------------------------------------


def test_move_steps_on_the_knob_scale() -> None:
    k = TASK.knobs
    assert _move(k["lr"], 1e-3, "increase", bold=False) == pytest.approx(2e-3)
    assert _move(k["lr"], 1e-3, "decrease", bold=True) == pytest.approx(2.5e-4)
    assert _move(k["dropout"], 0.3, "increase", bold=False) == pytest.approx(0.375)  # 15% of the range
    assert _move(k["width"], 32, "increase", bold=False) == 64 and isinstance(_move(k["width"], 32, "increase", bold=False), int)
    assert _move(k["lr"], 1e-3, "increase", bold=False, toward=4e-3) == pytest.approx(2e-3)  # geometric halfway


def test_move_stops_at_the_bounds_and_on_categoricals() -> None:
    k = TASK.knobs
    assert _move(k["lr"], 1.0, "increase", bold=False) is None
    assert _move(k["width"], 512, "increase", bold=True) is None
    assert _move(k["dropout"], 0.45, "increase", bold=True) == pytest.approx(0.5)  # clamped, still a move
    assert _move(k["act"], "tanh", "increase", bold=False) is None


# -- organize ----------------------------------------------------------------------------------


def test_organize_gives_every_draft_a_never_tested_axis() -> None:
    log = [entry(0, "lr", "increase", {"lr": 0.002}, gain=-0.1), entry(1, "width", "increase", {"width": 64}, gain=0.2)]
    reply = SCI.organize(view(TASK, log), n_teams=2, agents=AGENTS)
    assert len(reply.hypotheses) == 3  # one more than needed, for the vote
    untested = {"dropout", "act"}
    for d in reply.hypotheses:
        assert set(d.axes) & untested and set(d.axes) <= set(TASK.knobs)
        assert d.statement and d.prediction and "refut" in d.falsification
    assert {d.axes[0] for d in reply.hypotheses} == untested  # each untested axis leads a draft


def test_organize_votes_once_per_agent_never_for_its_own_draft() -> None:
    reply = SCI.organize(view(TASK), n_teams=3, agents=AGENTS)
    assert len(reply.votes) == len(AGENTS)
    for agent, vote in zip(AGENTS, reply.votes):
        assert 0 <= vote < len(reply.hypotheses) and reply.hypotheses[vote].author != agent


def test_organize_puts_measured_winners_first_once_everything_is_tested() -> None:
    log = [entry(i, a, "increase", {a: v}, gain=g) for i, (a, v, g) in
           enumerate([("lr", 0.002, 0.5), ("width", 64, -0.2), ("dropout", 0.4, -0.3), ("act", "gelu", -0.1)])]
    v = view(TASK, log, know=Knowledge(noise_sigma=0.05, noise_samples=2, effects={
        "lr": AxisEffect(axis="lr", tried=1, best_gain=0.5, by_direction={"increase": 0.5}),
        **{a: AxisEffect(axis=a, tried=1, best_gain=-0.2, by_direction={"increase": -0.2}) for a in ("width", "dropout", "act")}}))
    reply = SCI.organize(v, n_teams=1, agents=AGENTS)
    best = max(range(len(reply.hypotheses)), key=lambda i: reply.votes.count(i))
    assert reply.hypotheses[best].axes[0] == "lr" and "increase" in reply.hypotheses[best].statement


# -- propose -----------------------------------------------------------------------------------


def test_propose_two_tagged_drafts_on_different_axes_one_bold() -> None:
    reply = SCI.propose(view(TASK, teams=[team(axes=("lr", "width"))]), team=team(axes=("lr", "width")),
                        author="experimenter-1", recalled=[])
    ds = reply.proposals
    assert len(ds) == 2 and ds[0].axis != ds[1].axis
    assert [d.bold for d in ds] == [False, True]
    for i, d in enumerate(ds):
        assert d.axis and d.direction and d.knobs and d.rationale and d.prediction
        TASK.validate_overrides(d.knobs)
        assert auto_review(as_proposal(d, i), view(TASK)) is None  # the rules would let it run
    assert ds[0].axis in ("lr", "width")  # the team's own axes come first


def test_propose_continues_the_direction_that_gained() -> None:
    for good in ("increase", "decrease"):
        bad = "decrease" if good == "increase" else "increase"
        v = view(TASK, know=effects(lr={good: 0.3, bad: -0.3}))
        d = SCI.propose(v, team=team(axes=("lr",)), author="experimenter-1", recalled=[], n=1).proposals[0]
        assert d.axis == "lr" and d.direction == good
        assert (d.knobs["lr"] > 1e-3) == (good == "increase")


def test_propose_takes_a_half_step_toward_a_recorded_failure_and_says_so() -> None:
    # The usual step (x2) would land beyond lr=1.5e-3, where a run failed.
    v = view(TASK, dead_ends=[dead_end("lr", 1.5e-3, eid="e-bad")], know=effects(lr={"increase": 0.3}))
    d = SCI.propose(v, team=team(axes=("lr",)), author="experimenter-1", recalled=[], n=1).proposals[0]
    assert d.axis == "lr" and d.direction == "increase"
    assert 1e-3 < d.knobs["lr"] < 1.5e-3
    assert d.knobs["lr"] == pytest.approx(math.sqrt(1e-3 * 1.5e-3), rel=1e-3)
    assert "e-bad" in d.what_is_different
    assert auto_review(as_proposal(d), v) is None


def test_recalled_failures_from_memory_count_as_recorded_failures() -> None:
    mem = RecalledMemory(experiment_id="old-3", text="lr=1.5e-3 diverged", outcome="crash", axis="lr", direction="increase",
                         knobs={"lr": 1.5e-3}, score=0.95)
    v = view(TASK, know=effects(lr={"increase": 0.3}))
    d = SCI.propose(v, team=team(axes=("lr",)), author="experimenter-1", recalled=[mem], n=1).proposals[0]
    assert d.knobs["lr"] < 1.5e-3 and "old-3" in d.what_is_different


def test_propose_refines_the_step_once_the_usual_one_was_tried() -> None:
    log = [entry(0, "lr", "increase", {"lr": 0.002}, gain=0.01), entry(1, "lr", "decrease", {"lr": 0.0005}, gain=0.01)]
    v = view(TASK, log, know=effects(lr={"increase": 0.01, "decrease": 0.0}))
    d = SCI.propose(v, team=team(axes=("lr",)), author="experimenter-1", recalled=[], n=1).proposals[0]
    assert d.axis == "lr" and d.knobs["lr"] not in (0.002, 0.0005)
    assert d.knobs["lr"] == pytest.approx(1e-3 * 2 ** 0.5, rel=1e-3)


def test_categorical_proposals_try_never_measured_values_first() -> None:
    log = [entry(0, "act", "set", {"act": "relu"}, gain=0.01)]
    d = SCI.propose(view(TASK, log), team=team(axes=("act",)), author="experimenter-1", recalled=[], n=1).proposals[0]
    assert d.axis == "act" and d.direction == "set" and d.knobs == {"act": "gelu"}


def test_propose_strays_from_an_exhausted_team_axis() -> None:
    # Every value of the team's only axis already ran: it proposes on another axis rather than nothing.
    log = [entry(i, "act", "set", {"act": c}, gain=-0.1) for i, c in enumerate(("relu", "gelu"))]
    ds = SCI.propose(view(TASK, log), team=team(axes=("act",)), author="experimenter-1", recalled=[]).proposals
    assert ds and all(d.axis != "act" for d in ds)


def test_propose_is_a_pure_function_of_the_state() -> None:
    v = view(TASK, teams=[team()])
    a = SCI.propose(v, team=team(), author="experimenter-1", recalled=[])
    b = SearchScientist().propose(v, team=team(), author="experimenter-1", recalled=[])
    assert a == b


# -- critique ----------------------------------------------------------------------------------


def test_critique_rejects_what_the_surrogate_predicts_will_lose() -> None:
    # Two close neighbours of lr=2.1e-3 both lost far more than 2σ (reached from the other side,
    # so it is the surrogate that objects, not the losing-family check).
    log = [entry(0, "lr", "decrease", {"lr": 0.002}, gain=-0.5), entry(1, "lr", "decrease", {"lr": 0.0022}, gain=-0.4)]
    v = view(TASK, log, know=Knowledge(noise_sigma=0.01, noise_samples=3))
    reply = SCI.critique(v, proposal=proposal("lr", "increase", {"lr": 0.0021}), reviewer="analyst-2", recalled=[])
    assert reply.review is not None and reply.review.approve is False
    assert "surrogate" in reply.review.reason and "e0" in reply.review.reason


def test_critique_approves_with_a_reason_when_neighbours_won_or_are_far() -> None:
    won = [entry(0, "lr", "increase", {"lr": 0.002}, gain=0.3)]
    v = view(TASK, won, know=Knowledge(noise_sigma=0.01, noise_samples=3))
    r = SCI.critique(v, proposal=proposal("lr", "increase", {"lr": 0.0021}), reviewer="analyst-2", recalled=[]).review
    assert r is not None and r.approve and "e0" in r.reason
    lost_far = [entry(0, "lr", "increase", {"lr": 0.5}, gain=-0.5)]
    v = view(TASK, lost_far, know=Knowledge(noise_sigma=0.01, noise_samples=3))
    r = SCI.critique(v, proposal=proposal("lr", "increase", {"lr": 0.0021}), reviewer="analyst-2", recalled=[]).review
    assert r is not None and r.approve and r.reason.strip()


def test_critique_does_not_judge_before_the_noise_is_known() -> None:
    log = [entry(0, "lr", "increase", {"lr": 0.002}, gain=-0.5)]
    v = view(TASK, log, know=Knowledge())
    r = SCI.critique(v, proposal=proposal("lr", "increase", {"lr": 0.0021}), reviewer="analyst-2", recalled=[]).review
    assert r is not None and r.approve


def test_critique_compares_on_the_current_champion() -> None:
    # The loser ran at width 32; the proposal runs on a width-512 champion, far away in knob space.
    log = [entry(0, "lr", "increase", {"lr": 0.002}, gain=-0.5)]
    v = view(TASK, log, champ=champion(TASK, width=512), know=Knowledge(noise_sigma=0.01, noise_samples=3))
    r = SCI.critique(v, proposal=proposal("lr", "increase", {"lr": 0.0021}), reviewer="analyst-2", recalled=[]).review
    assert r is not None and r.approve


def test_the_critic_stops_a_family_after_two_clear_losses() -> None:
    task = make_synth_task()
    sci = SearchScientist()
    know = Knowledge(noise_sigma=0.01, noise_samples=4)
    p = proposal("lr", "increase", {"lr": 0.02}, pid="new")
    two_losses = view(task, [entry(0, gain=-0.05, knobs={"lr": 0.004}), entry(1, gain=-0.08, knobs={"lr": 0.006})], know=know)
    review = sci.critique(two_losses, proposal=p, reviewer="analyst-2", recalled=[]).review
    assert review is not None and not review.approve and "e0" in review.reason and "e1" in review.reason
    # A loss within 2σ does not count, and a keep since then starts the family afresh.
    mild = view(task, [entry(0, gain=-0.05, knobs={"lr": 0.004}), entry(1, gain=-0.01, knobs={"lr": 0.006})], know=know)
    assert sci._losing_family(mild, p, 0.01) is None
    after_keep = view(task, [entry(0, gain=-0.05, knobs={"lr": 0.004}), entry(1, gain=-0.08, knobs={"lr": 0.006}),
                             entry(2, "width", gain=0.1, outcome="keep", knobs={"width": 64})], know=know)
    assert sci._losing_family(after_keep, p, 0.01) is None
