"""Candidates outlive champion moves (autosci_graph/lab/candidates.py, lab/changes.py)."""

from __future__ import annotations

import pytest
from lab_helpers import make_synth_task

from autosci_graph.lab.candidates import next_seed, rebased_change
from autosci_graph.lab.changes import StackingError, change_to_run
from autosci_graph.state import Candidate, Champion, Change, Proposal

TASK = make_synth_task()
DEFAULT = TASK.default_config()
OLD = Champion(experiment_id=None, config=dict(DEFAULT), metric=2.0, seeds=[0, 1], metrics_by_seed={"0": 2.0, "1": 2.0})
MOVED = Champion(experiment_id="e7", config={**DEFAULT, "lr": 0.004}, metric=1.5, seeds=[0, 1], metrics_by_seed={"0": 1.5, "1": 1.5})


def candidate(knobs: dict, diff: str | None = None) -> Candidate:
    p = Proposal(proposal_id="p1", author="experimenter-1", team="t1", axis=next(iter(knobs)), direction="set",
                 change=Change(knobs=knobs, diff=diff))
    return Candidate(candidate_id="e3", proposal=p, change=change_to_run(OLD, p.change), base=OLD)


def test_a_candidate_is_re_expressed_as_its_direction_on_the_new_champion() -> None:
    change, why = rebased_change(TASK, candidate({"act": "gelu"}), OLD, MOVED)
    assert change is not None and "rebased" in why
    assert change.knobs == {**MOVED.config, "act": "gelu"}  # the new champion's lr, the candidate's own act


def test_a_candidate_on_the_axis_the_champion_moved_is_moot() -> None:
    change, why = rebased_change(TASK, candidate({"lr": 0.01}), OLD, MOVED)
    assert change is None and "moot" in why and "lr" in why


def test_a_candidate_the_new_champion_already_contains_is_moot() -> None:
    same = Champion(experiment_id="e8", config={**DEFAULT, "act": "gelu"}, metric=1.5, seeds=[0])
    change, why = rebased_change(TASK, candidate({"act": "gelu"}), OLD.model_copy(update={"config": {**DEFAULT, "act": "gelu", "lr": 0.001}}), same)
    assert change is None and "moot" in why


def test_a_code_increment_stacks_on_the_champion_code_never_replaces_it() -> None:
    champ = OLD.model_copy(update={"diff": "CHAMPION"})
    with pytest.raises(StackingError):
        change_to_run(champ, Change(diff="INCREMENT"))  # no way to stack: refuse, never drop the champion's code
    stacked = change_to_run(champ, Change(diff="INCREMENT"), stack=lambda base, inc: f"{base}+{inc}")
    assert stacked.diff == "CHAMPION+INCREMENT"
    kept = change_to_run(champ, Change(knobs={"lr": 0.01}))
    assert kept.diff == "CHAMPION" and kept.knobs["lr"] == 0.01


def test_next_seed_pairs_with_the_other_side_first() -> None:
    assert next_seed((0, 1, 2), {0}, prefer=[3, 0]) == 3
    assert next_seed((0, 1, 2), {0, 1, 2}, prefer=[]) == 3
