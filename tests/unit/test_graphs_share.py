"""share: an exploration overtaken by a new champion is re-run on it (rebase), once."""

from __future__ import annotations

from autosci_graph.graphs.context import LabContext
from autosci_graph.graphs.share import _rebase
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Champion, Change, Proposal, RunResult, Submission
from autosci_graph.tools.inprocess import FunctionExecutor
from tests.unit.lab_helpers import make_synth_task

TASK = make_synth_task()
DEFAULT = TASK.default_config()
CTX = LabContext(task=TASK, executor=FunctionExecutor(lambda c, s: 0.0, metric_name="loss"), scientist=SearchScientist())


def _sub(base_metric: float = 2.0) -> Submission:
    p = Proposal(proposal_id="r1-t1-v0-0", author="experimenter-1", team="t1", axis="act", direction="set",
                 change=Change(knobs={"act": "gelu"}))
    return Submission(experiment_id="r1-t1-aaa", proposal=p, seed=0, change=Change(knobs={**DEFAULT, "act": "gelu"}),
                      base_metric=base_metric)


def _result(metric: float) -> RunResult:
    return RunResult(experiment_id="r1-t1-aaa", status="ok", change=_sub().change, seed=0, metric_name="loss", metric=metric)


MOVED = Champion(experiment_id="r0-t2-bbb", config={**DEFAULT, "lr": 0.004}, metric=1.5, seeds=[0, 1])
SAME = Champion(experiment_id=None, config=dict(DEFAULT), metric=2.0, seeds=[0, 1])


def test_a_gain_over_its_own_base_is_rerun_on_the_new_champion() -> None:
    rebased = _rebase(CTX, _sub(), _result(1.8), MOVED, {})
    assert rebased is not None
    assert rebased.change.knobs == {**MOVED.config, "act": "gelu"}
    assert rebased.experiment_id == "r1-t1-aaa-rb" and rebased.base_metric == 1.5 and rebased.kind == "explore"


def test_no_rebase_when_the_champion_did_not_move() -> None:
    assert _rebase(CTX, _sub(), _result(1.8), SAME, {}) is None


def test_no_rebase_for_a_change_that_lost_to_its_own_base() -> None:
    assert _rebase(CTX, _sub(base_metric=2.0), _result(2.1), MOVED, {}) is None


def test_no_rebase_when_the_same_configuration_is_already_queued() -> None:
    first = _rebase(CTX, _sub(), _result(1.8), MOVED, {})
    assert first is not None
    assert _rebase(CTX, _sub(), _result(1.8), MOVED, {first.experiment_id: first}) is None
