"""SearchScientist (autosci_graph/scientists/search.py) and the scientist interface (scientists/base.py)."""

from __future__ import annotations

import math

import pytest
from lab_helpers import champion, entry, make_synth_task, proposal, team, view
from pydantic import ValidationError

from autosci_graph.lab.critique import auto_review, unit_step
from autosci_graph.scientists.base import AxisEffect, HypothesisDraft, Knowledge, ReviewDraft, Scientist
from autosci_graph.scientists.search import BOLD_STEP, SearchScientist
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


# -- organize ----------------------------------------------------------------------------------


def test_organize_gives_every_draft_a_never_tested_axis() -> None:
    log = [entry(0, "lr", "increase", {"lr": 0.002}, gain=-0.1), entry(1, "width", "increase", {"width": 64}, gain=0.2)]
    reply = SCI.organize(view(TASK, log), n_teams=2, agents=AGENTS)
    assert len(reply.hypotheses) == 2
    untested = {"dropout", "act"}
    for d in reply.hypotheses:
        assert set(d.axes) & untested and set(d.axes) <= set(TASK.knobs)
        assert d.statement and d.prediction and "refut" in d.falsification
    # Every axis belongs to some team: nothing falls out of the search.
    assert set().union(*(set(d.axes) for d in reply.hypotheses)) == set(TASK.knobs)


def test_new_teams_split_the_axes_no_active_team_owns() -> None:
    active = team("t1", axes=("lr", "width"))
    reply = SCI.organize(view(TASK, teams=[active]), n_teams=1, agents=AGENTS)
    assert len(reply.hypotheses) == 1 and set(reply.hypotheses[0].axes) == {"dropout", "act"}


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
    assert any(d.bold for d in ds)
    for i, d in enumerate(ds):
        assert d.axis and d.direction and d.knobs and d.rationale and d.prediction
        TASK.validate_overrides(d.knobs)
        assert auto_review(as_proposal(d, i), view(TASK)) is None  # the rules would let it run
        if d.bold:  # bold means a set fraction of the knob's (log) range
            assert unit_step(TASK, TASK.default_config(), d.knobs, d.axis) >= BOLD_STEP * 0.8  # type: ignore[operator]
    assert ds[0].axis in ("lr", "width")  # the team's own axes come first


def _quadratic_log(n: int, seed: int = 0) -> list:  # type: ignore[type-arg]
    """A log of n runs of lr and width on a bowl with its optimum at lr=3e-2, width=128."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        lr, width = 10 ** rng.uniform(-4, 0), int(2 ** rng.uniform(3, 9))
        loss = (math.log10(lr) - math.log10(3e-2)) ** 2 + 0.3 * (math.log2(width) - 7) ** 2
        out.append(entry(i, "lr", "increase", {"lr": lr, "width": width}, gain=None, metric=loss))
    return out


def test_a_team_strays_to_another_axis_only_when_the_surrogate_expects_far_more_there() -> None:
    # lr and width are measured all over their bowl; the activation never was, so the surrogate
    # expects much more from switching it than from another lr/width move near the measured optimum.
    log = _quadratic_log(24)
    v = view(TASK, log, champ=champion(TASK, metric=0.05, lr=3e-2, width=128))
    own = team(axes=("lr", "width"))
    d = SCI.propose(v, team=own, author="experimenter-1", recalled=[], n=1).proposals[0]
    assert d.axis not in ("lr", "width") and set(d.knobs) - {"lr", "width"}
    stays = SearchScientist(stray_factor=math.inf).propose(v, team=own, author="experimenter-1", recalled=[], n=1).proposals[0]
    assert set(stays.knobs) <= {"lr", "width"}


def test_the_surrogate_steers_proposals_toward_the_measured_optimum() -> None:
    log = _quadratic_log(12)
    v = view(TASK, log, champ=champion(TASK, metric=2.0, lr=1e-3, width=32))
    own_axes_only = SearchScientist(stray_factor=math.inf)
    d = own_axes_only.propose(v, team=team(axes=("lr", "width")), author="experimenter-1", recalled=[], n=1).proposals[0]
    # From lr=1e-3, width=32 the bowl's bottom is up in both: the chosen move goes that way.
    moved = {k: v for k, v in d.knobs.items()}
    assert (moved.get("lr", 1e-3) > 1e-3) or (moved.get("width", 32) > 32)
    assert moved.get("lr", 1e-3) >= 1e-3 and moved.get("width", 32) >= 32


def test_steps_never_shrink_to_nothing() -> None:
    # Many failed explorations around the champion: the candidates still include full-size steps.
    log = [entry(i, "lr", "increase" if i % 2 else "decrease", {"lr": 1e-3 * (1.1 ** (i + 1) if i % 2 else 0.9 ** (i + 1))})
           for i in range(10)]
    drafts = SCI._candidates(view(TASK, log), ["lr"], __import__("random").Random(0))
    steps = sorted(unit_step(TASK, TASK.default_config(), d.knobs, "lr") or 0 for d in drafts)
    assert steps[-1] >= BOLD_STEP * 0.99 and steps[0] >= BOLD_STEP / 4 * 0.9


def test_after_a_keep_the_move_is_bracketed() -> None:
    # lr went 1e-3 -> 1e-2 in the last keep: the midpoint (about 3.2e-3) and an overshoot (1e-1) are candidates.
    log = [entry(0, "lr", "increase", {"lr": 1e-2}, outcome="keep", gain=0.3)]
    v = view(TASK, log, champ=champion(TASK, lr=1e-2))
    values = {d.knobs.get("lr") for d in SCI._candidates(v, ["lr"], __import__("random").Random(0))}
    assert any(v is not None and 3.0e-3 <= v <= 3.3e-3 for v in values)
    assert any(v is not None and 0.09 <= v <= 0.11 for v in values)


def test_proposals_never_repeat_a_measured_configuration() -> None:
    # The default ran as the baseline; the champion moved lr. Going back to the default is a repeat.
    log = [entry(0, None, None, {}, kind="baseline", outcome="keep", gain=None, full=TASK.default_config()),
           entry(1, "lr", "increase", {"lr": 2.5e-3}, outcome="keep", gain=0.2)]
    v = view(TASK, log, champ=champion(TASK, lr=2.5e-3))
    p = proposal("lr", "decrease", {"lr": 1e-3})
    review = auto_review(p, v)
    assert review is not None and review.rule == "duplicate"
    for d in SCI.propose(v, team=team(axes=("lr",)), author="experimenter-1", recalled=[]).proposals:
        assert {**v.champion.config, **d.knobs} != TASK.default_config()


def test_categorical_proposals_offer_every_other_choice() -> None:
    drafts = SCI._candidates(view(TASK), ["act"], __import__("random").Random(0))
    assert sorted(d.knobs["act"] for d in drafts) == ["gelu", "relu"]
    assert all(d.direction == "set" for d in drafts)


def test_a_team_tests_its_untested_primary_axis_first_with_a_bold_move() -> None:
    # Before any run moved width, a team whose hypothesis leads with width proposes a bold width
    # move first, whatever the seed (the ranking has nothing to judge an untested axis by).
    own = team(axes=("width", "lr", "dropout"))
    for seed in range(8):
        v = view(TASK).model_copy(update={"seed": seed})
        first = SCI.propose(v, team=own, author="experimenter-1", recalled=[]).proposals[0]
        assert first.axis == "width" and first.bold and set(first.knobs) == {"width"}
    # Once width has been moved, the ranking decides again.
    moved = [entry(0, "width", "increase", {"width": 64})]
    assert "width" not in view(TASK, moved).knowledge.untested_axes


def test_without_primary_first_the_ranking_alone_orders_an_untested_primary_axis() -> None:
    # The ablation of the rule above (SearchScientist(primary_first=False)): the same team and
    # seeds, and the seeded ranking leads with another axis for some of them.
    own = team(axes=("width", "lr", "dropout"))
    plain = SearchScientist(primary_first=False)
    firsts = [plain.propose(view(TASK).model_copy(update={"seed": seed}), team=own, author="experimenter-1", recalled=[]).proposals[0]
              for seed in range(8)]
    assert {p.axis for p in firsts} != {"width"}


def test_propose_strays_from_an_exhausted_team_axis() -> None:
    # Every value of the team's only axis already ran: it proposes on another axis rather than nothing.
    log = [entry(i, "act", "set", {"act": c}, gain=-0.1) for i, c in enumerate(("relu", "gelu"))]
    ds = SCI.propose(view(TASK, log), team=team(axes=("act",)), author="experimenter-1", recalled=[]).proposals
    assert ds and all(d.axis != "act" for d in ds)


def test_propose_is_a_pure_function_of_the_state_and_the_seed() -> None:
    v = view(TASK, _quadratic_log(6), teams=[team()])
    a = SCI.propose(v, team=team(), author="experimenter-1", recalled=[])
    b = SearchScientist().propose(v, team=team(), author="experimenter-1", recalled=[])
    assert a == b
    # Before the surrogate is fitted, ties are broken by the seeded generator: the lab's seed matters.
    fresh = view(TASK, teams=[team(axes=("lr", "width"))])
    first = SCI.propose(fresh, team=team(axes=("lr", "width")), author="experimenter-1", recalled=[])
    others = [SCI.propose(fresh.model_copy(update={"seed": s}), team=team(axes=("lr", "width")), author="experimenter-1", recalled=[])
              for s in range(1, 8)]
    assert any(o != first for o in others)


# -- critique ----------------------------------------------------------------------------------


def test_critique_rejects_what_the_surrogate_confidently_predicts_will_lose() -> None:
    log = _quadratic_log(14)
    v = view(TASK, log, champ=champion(TASK, metric=0.05, lr=3e-2, width=128), know=Knowledge(noise_sigma=0.01, noise_samples=3))
    far = SCI.critique(v, proposal=proposal("lr", "decrease", {"lr": 1e-4}), reviewer="analyst-2", recalled=[]).review
    assert far is not None and far.approve is False and "surrogate" in far.reason
    near = SCI.critique(v, proposal=proposal("lr", "increase", {"lr": 3.3e-2}), reviewer="analyst-2", recalled=[]).review
    assert near is not None and near.approve and "surrogate" in near.reason


def test_critique_approves_with_a_reason_before_the_surrogate_can_judge() -> None:
    log = [entry(0, "lr", "increase", {"lr": 0.002}, gain=-0.5)]
    r = SCI.critique(view(TASK, log), proposal=proposal("lr", "increase", {"lr": 0.0021}), reviewer="analyst-2", recalled=[]).review
    assert r is not None and r.approve and r.reason.strip()
