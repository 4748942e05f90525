"""The lab graph end to end, in process (autosci_graph/graphs/lab.py, team.py, share.py).

Real graph, real SearchScientist, FunctionExecutor: experiments are Python functions, so a whole
run takes well under a second.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from lab_helpers import OPTIMUM, make_synth_task, noise_fn, run_lab, stable_normal, synth_loss, true_loss

from autosci_graph.lab.changes import change_key, context_key
from autosci_graph.lab.critique import refutes
from autosci_graph.lab.knowledge import axis_effects
from autosci_graph.lab.lead import direction, shared_ancestor
from autosci_graph.state import Candidate
from autosci_graph.graphs.context import LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.scientists.base import CritiqueReply, LabView, ProposeReply, RecalledMemory, ReviewDraft
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Change, ExperimentEntry, Proposal, Team

TASK = make_synth_task()


def by_type(final: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in final["events"] if e["type"] == kind]


def assert_every_submission_logged_once(final: dict[str, Any]) -> None:
    submitted = [s["experiment_id"] for s in final["submitted"]]
    logged = [e["result"]["experiment_id"] for e in final["log"]]
    assert len(set(submitted)) == len(submitted)
    assert Counter(logged) == Counter(submitted)


def worse_everywhere(change: Change, seed: int) -> float:
    """Every move away from the task defaults loses, by far more than the noise."""
    k, d = change.knobs, TASK.default_config()
    dist = sum(k[name] != d[name] for name in d)
    return 1.0 + 0.5 * dist + 0.001 * stable_normal("worse", seed, sorted(k.items()))


# -- the scientists the tests script -------------------------------------------------------------


class RejectingScientist(SearchScientist):
    """Proposes like SearchScientist; as a critic rejects everything (with a reason)."""

    def __init__(self) -> None:
        super().__init__()
        self.critiques = 0
        self._lock = threading.Lock()

    def critique(self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> CritiqueReply:
        with self._lock:
            self.critiques += 1
        return CritiqueReply(review=ReviewDraft(approve=False, reason="scripted: nothing runs in this lab"))


class RecordingScientist(SearchScientist):
    """SearchScientist that records who reviewed whose proposal."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def critique(self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> CritiqueReply:
        with self._lock:
            self.pairs.append((proposal.proposal_id, proposal.author, reviewer))
        return super().critique(view, proposal=proposal, reviewer=reviewer, recalled=recalled)


# -- a task with a known optimum ---------------------------------------------------------------


def test_the_lab_improves_a_task_with_a_known_optimum_within_the_exact_budget() -> None:
    settings = LabSettings(n_teams=2, max_experiments=30, stop_after_no_keep=None, max_idle_rounds=30)
    # Synchronous: with runs in threads, which slot frees first (the clock) would steer the search.
    final, executor = run_lab(TASK, synth_loss(sigma=0.02), SearchScientist(), settings, slots=2, synchronous=True)

    assert final["stop_reason"] == "experiment budget spent (30)"
    assert len(final["submitted"]) == 30
    assert_every_submission_logged_once(final)
    assert executor.max_running <= 2

    champ = final["champion"]
    default = true_loss(TASK.default_config())
    assert champ["experiment_id"] is not None and by_type(final, "promotion")
    assert true_loss(champ["config"]) < 0.25 * default  # 1.96 at the default, 0 at the optimum
    assert any(champ["config"][k] != TASK.default_config()[k] for k in OPTIMUM)
    # The champion is an accepted result: its metric is the mean over logged runs of its own
    # configuration, one per seed (the runs that promoted it, and any later repeats of it).
    key = change_key(TASK, Change(knobs=champ["config"]))
    runs = {e["result"]["seed"]: e["result"]["metric"] for e in final["log"]
            if e["result"]["status"] == "ok" and change_key(TASK, Change.model_validate(e["result"]["change"])) == key}
    assert {str(s): runs[s] for s in champ["seeds"]} == champ["metrics_by_seed"]
    assert champ["metric"] == pytest.approx(sum(champ["metrics_by_seed"].values()) / len(champ["seeds"]))
    # Every promotion improved on the champion before it.
    for p in by_type(final, "promotion"):
        assert p["metric"] < p["previous"]


def test_every_finished_run_is_in_the_log_and_every_discard_in_the_dead_end_registry() -> None:
    settings = LabSettings(n_teams=2, max_experiments=16, stop_after_no_keep=None, max_idle_rounds=16)
    final, _ = run_lab(TASK, synth_loss(sigma=0.02), SearchScientist(), settings, slots=1)
    log = [ExperimentEntry.model_validate(e) for e in final["log"]]
    assert [e.index for e in log] == list(range(len(log)))
    # A discard that measured no gain refutes its direction and is a dead end; a discarded gain
    # (a near miss, or a run overtaken by a champion move) is not evidence against it.
    refuting = {e.result.experiment_id for e in log if refutes(e) and e.kind == "explore"}
    registry = {d["experiment_id"] for d in final["dead_ends"]}
    assert refuting and refuting <= registry
    assert not {e.result.experiment_id for e in log if e.outcome == "discard" and (e.gain or 0) > 0 and e.kind == "explore"} & registry
    # Each records where it failed: its run's configuration without its axis, and how it failed.
    by_id = {e.result.experiment_id: e for e in log}
    for d in final["dead_ends"]:
        e = by_id[d["experiment_id"]]
        assert d["context"] == context_key(TASK, e.result.change, d["axis"])
        assert d["outcome"] == ("crash" if e.outcome == "crash" else "discard")
    assert {e.kind for e in log} >= {"baseline", "explore"}
    assert sum(e.kind == "baseline" for e in log) == settings.baseline_seeds


# -- noise --------------------------------------------------------------------------------------


def test_forty_experiments_on_pure_noise_promote_nothing() -> None:
    settings = LabSettings(n_teams=3, max_experiments=40, stop_after_no_keep=None, max_idle_rounds=40)
    # The synchronous executor: each run's result is in before the next decision, whatever the
    # machine's load (with worker threads, a loaded machine changed how results were batched).
    final, _ = run_lab(TASK, noise_fn(constant=1.0, sigma=0.05), SearchScientist(), settings, slots=1, synchronous=True)

    # Four knobs of pure noise: the rules run out of untried moves around the lucky leads a few
    # experiments before the budget does (34 of 40 at seed 0), after re-measuring each lead.
    assert len(final["submitted"]) >= 30
    assert final["stop_reason"] in ("experiment budget spent (40)", "no proposal approved in 40 rounds")
    assert_every_submission_logged_once(final)
    assert by_type(final, "promotion") == []
    assert final["champion"]["experiment_id"] is None
    assert all(e["outcome"] != "keep" for e in final["log"] if e["kind"] in ("explore", "confirm"))
    # The gate was really tested: most of the budget went to explorations, some looked like wins.
    kinds = Counter(e["kind"] for e in final["log"])
    assert kinds["explore"] + kinds["confirm"] >= 25 and kinds["explore"] >= 15
    assert any((e["gain"] or 0) > 0 for e in final["log"] if e["kind"] == "explore")
    # Lucky leads were re-measured on fresh seeds and regressed: the gate was asked, and held.
    assert kinds["confirm"] >= 3


# -- critique before compute -------------------------------------------------------------------


def test_a_rejected_proposal_never_runs() -> None:
    sci = RejectingScientist()
    # Room for the repeats: the champion may collect more seeds than the baseline gave it.
    settings = LabSettings(n_teams=2, max_experiments=30, max_idle_rounds=3, max_champion_seeds=8)
    final, _ = run_lab(TASK, synth_loss(), sci, settings, slots=1)

    assert sci.critiques > 0  # the critic was asked ...
    assert final["reviews"] and not any(r["approve"] for r in final["reviews"])  # ... and said no every time
    kinds = Counter(s["kind"] for s in final["submitted"])
    assert kinds["explore"] == 0 and kinds["confirm"] == 0
    assert set(kinds) <= {"baseline", "noise"}
    assert final["stop_reason"] == "no proposal approved in 3 rounds"
    assert final["champion"]["experiment_id"] is None
    # Each idle round re-measured the champion instead of leaving the slot empty.
    assert kinds["noise"] == settings.max_idle_rounds
    assert_every_submission_logged_once(final)


def test_the_reviewer_is_never_the_author() -> None:
    sci = RecordingScientist()
    settings = LabSettings(n_teams=3, max_experiments=32, stop_after_no_keep=None, max_idle_rounds=32)
    final, _ = run_lab(TASK, synth_loss(), sci, settings, slots=2, synchronous=True)

    assert len(sci.pairs) >= 6
    for _, author, reviewer in sci.pairs:
        assert reviewer != author and reviewer.startswith("analyst-") and author.startswith("experimenter-")
    # Every exploration that ran had an approving review by someone other than its author.
    approvals = {r["proposal_id"]: r for r in final["reviews"] if r["approve"]}
    for s in final["submitted"]:
        if s["kind"] == "explore":
            review = approvals[s["proposal"]["proposal_id"]]
            assert review["reviewer"] not in (s["proposal"]["author"], "rules") and review["reason"].strip()


def test_a_one_person_team_gets_an_outside_critic() -> None:
    sci = RecordingScientist()
    settings = LabSettings(n_teams=1, analysts_per_team=1, experimenters_per_team=0, max_experiments=6, max_idle_rounds=6)
    run_lab(TASK, synth_loss(), sci, settings, slots=1)
    assert sci.pairs
    for _, author, reviewer in sci.pairs:
        assert author == "analyst-1" and reviewer != author


# -- teams ---------------------------------------------------------------------------------------


def test_every_new_team_owns_an_axis_untested_when_it_formed() -> None:
    settings = LabSettings(n_teams=3, max_experiments=40, stop_after_no_keep=None, max_idle_rounds=40,
                           regroup_rotations_without_keep=1)
    final, _ = run_lab(TASK, synth_loss(), SearchScientist(), settings, slots=1)
    formed = by_type(final, "team_formed")
    initial = [e for e in formed if e["at_experiment"] == 0]
    assert len(initial) == 3 and len({e["axes"][0] for e in initial}) == 3
    log = [ExperimentEntry.model_validate(e) for e in final["log"]]
    assert len(formed) > 3, "expected later formations to check"
    for at in sorted({e["at_experiment"] for e in formed}):
        batch = [e for e in formed if e["at_experiment"] == at]
        untested = set(TASK.knobs) - set(axis_effects(log[:at]))
        owning = sum(1 for e in batch if set(e["axes"]) & untested)
        assert owning >= min(len(batch), len(untested)), (at, batch, untested)


def _explore_times(final: dict[str, Any]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for s in final["submitted"]:
        if s["kind"] == "explore":
            out.setdefault(s["proposal"]["team"], []).append(s["submitted_at"])
    return out


def test_falsified_teams_dissolve_and_are_replaced() -> None:
    settings = LabSettings(n_teams=2, max_experiments=20, stop_after_no_keep=None, max_idle_rounds=20,
                           falsify_rotations=1, falsify_refutes=1,
                           regroup_rotations_without_keep=100, regroup_discards=100)
    final, _ = run_lab(TASK, worse_everywhere, SearchScientist(), settings, slots=1)
    falsified = by_type(final, "team_falsified")
    assert falsified and not by_type(final, "regroup")
    teams = {t["team_id"]: Team.model_validate(t) for t in final["teams"]}
    runs = _explore_times(final)
    for ev in falsified:
        t = teams[ev["team"]]
        assert t.status == "falsified" and t.refute >= 1 and t.support == 0
        # A falsified team runs nothing afterwards ...
        assert all(at <= ev["at"] for at in runs.get(t.team_id, []))
        # ... and a new team takes its place at once.
        assert any(f["at_experiment"] == ev["at_experiment"] and f["team"] not in (ev["team"],)
                   for f in by_type(final, "team_formed"))
    assert sum(t.status == "active" for t in teams.values()) <= settings.n_teams


def test_regroup_dissolves_the_teams_and_forms_new_ones() -> None:
    settings = LabSettings(n_teams=2, max_experiments=24, stop_after_no_keep=None, max_idle_rounds=24,
                           regroup_rotations_without_keep=1, falsify_refutes=1000, regroup_cooldown=0, team_min_life=0)
    final, _ = run_lab(TASK, worse_everywhere, SearchScientist(), settings, slots=1)
    regroups = by_type(final, "regroup")
    assert len(regroups) >= 2 and not by_type(final, "team_falsified")
    formed = by_type(final, "team_formed")
    teams = {t["team_id"]: t for t in final["teams"]}
    runs = _explore_times(final)
    for rg in regroups:
        assert "no keep" in rg["reason"]
        before = [f["team"] for f in formed if f["at"] <= rg["at"]]
        after = [f["team"] for f in formed if f["at_experiment"] == rg["at_experiment"] and f["at"] >= rg["at"]]
        assert len(after) == settings.n_teams
        for tid in before:
            assert teams[tid]["status"] in ("dissolved", "falsified", "merged")
            assert all(at <= rg["at"] for at in runs.get(tid, []))
    assert sum(t["status"] == "active" for t in teams.values()) == settings.n_teams


def test_the_builder_is_uncompiled() -> None:
    g = build_lab_graph()
    assert not hasattr(g, "invoke")
    assert {"organize", "team-0", "team-15", "tend", "collect", "share"} <= set(g.nodes)
    assert {"team-0", "team-1"} == {n for n in build_lab_graph(max_branches=2).nodes if n.startswith("team")}


def test_a_budget_too_small_for_the_baseline_runs_nothing() -> None:
    # One run may take the task's whole timeout (5 s): a 4 s device budget cannot fit one.
    settings = LabSettings(n_teams=2, max_experiments=10, max_device_seconds=4.0)
    final, _ = run_lab(TASK, synth_loss(), SearchScientist(), settings, slots=1)
    assert final["submitted"] == [] and final["log"] == []
    assert final["stop_reason"] == "the budgets cannot fit one run of the default configuration"


# -- reproducibility and candidates ---------------------------------------------------------------


def _decisions(final: dict) -> list[tuple]:  # type: ignore[type-arg]
    """The lab's decisions, without run ids and timestamps."""
    return [(e["kind"], e["proposal"]["axis"], e["proposal"]["direction"], sorted(e["result"]["change"]["knobs"].items()),
             e["result"]["seed"], e["outcome"], e["result"]["metric"]) for e in final["log"]]


def test_same_seed_same_log_whatever_the_run_id() -> None:
    settings = LabSettings(n_teams=3, max_experiments=30, stop_after_no_keep=None, seed=7)
    a, _ = run_lab(TASK, synth_loss(), SearchScientist(), settings, slots=2, run_id="2026-12-01-a", synchronous=True)
    b, _ = run_lab(TASK, synth_loss(), SearchScientist(), settings, slots=2, run_id="another-id", synchronous=True)
    assert len(a["log"]) >= 20 and _decisions(a) == _decisions(b)
    c, _ = run_lab(TASK, synth_loss(), SearchScientist(), LabSettings(**{**settings.__dict__, "seed": 8}), slots=2,
                   run_id="2026-12-01-a", synchronous=True)
    assert _decisions(c) != _decisions(a)  # the seed is the lab's randomness


def test_a_rebased_candidate_is_re_measured_on_the_new_champion() -> None:
    settings = LabSettings(n_teams=3, max_experiments=40, stop_after_no_keep=None, seed=0)
    final, _ = run_lab(TASK, synth_loss(), SearchScientist(), settings, slots=3, synchronous=True)
    candidates = {c["candidate_id"]: c for c in final["candidates"]}
    rebased = [c for c in candidates.values() if c["rebased_from"]]
    assert rebased, "three teams in parallel should see a candidate overtaken by a champion move"
    for c in rebased:
        base = c["base"]
        # The rebased change is the new base champion plus the candidate's own direction (its
        # proposal, and the lead it stepped from when it built on one, unless the new champion
        # descends from that lead too: then only the steps taken after it) ...
        root = Candidate.model_validate(candidates[c["rebased_from"]])
        parsed = {i: Candidate.model_validate(x) for i, x in candidates.items()}
        since = shared_ancestor(root, parsed.get(base["experiment_id"] or ""), parsed)
        knobs, _ = direction(root, since)
        assert c["change"]["knobs"] == {**base["config"], **knobs}
        assert c["proposal"]["change"]["knobs"].items() <= c["change"]["knobs"].items()
        # ... and it really ran: its runs are of that change, judged against that champion.
        of = {x["experiment_id"]: x.get("candidate_of") or x["experiment_id"] for x in final["submitted"]}
        runs = [e for e in final["log"] if of[e["result"]["experiment_id"]] == c["candidate_id"]]
        assert runs and all(e["result"]["change"]["knobs"] == c["change"]["knobs"] for e in runs)
        assert all(e["champion_metric"] == base["metric"] or e["outcome"] == "discard" for e in runs)


def test_more_slots_than_teams_keeps_every_slot_busy() -> None:
    # Three teams of two experimenters on six slots: after the baseline every experimenter gets a
    # branch, and all six run at once (one run per team, the design before, left three idle). The
    # two experimenters of a team draft from the same state at the same time; the second is told
    # so (LabView.siblings_drafting) and drafts something else, so the round's claims refuse none.
    def slow(change: Change, seed: int) -> float:
        threading.Event().wait(2.0)
        return synth_loss()(change, seed)

    settings = LabSettings(n_teams=3, max_experiments=9, stop_after_no_keep=None)
    final, ex = run_lab(TASK, slow, SearchScientist(), settings, slots=6)
    assert ex.max_running == 6
    assert not [e for e in final["events"] if e["type"] == "duplicate_skipped"]
    holder = {s["experiment_id"]: s.get("holder") for s in final["submitted"] if s["kind"] == "explore"}
    spans: dict[str, list[tuple[float, float]]] = {}
    for e in final["log"]:
        if e["result"]["experiment_id"] in holder:
            spans.setdefault(holder[e["result"]["experiment_id"]], []).append((e["result"]["started_at"], e["result"]["ended_at"]))
    assert len(spans) > settings.n_teams  # more experimenters ran than there are teams
    for runs in spans.values():  # and none held two runs at once
        runs.sort()
        assert all(end <= nxt_start for (_, end), (nxt_start, _) in zip(runs, runs[1:]))


def test_approved_work_merges_the_same_in_any_batching() -> None:
    # A delta channel replays checkpointed writes in batches of any size: the reducer must not care.
    from autosci_graph.graphs.state import LabState
    from typing import get_type_hints
    reduce = get_type_hints(LabState, include_extras=True)["queued"].__metadata__[0].reducer
    w1 = [{"proposal_id": "p1", "team": "t1", "status": "ready"}, {"proposal_id": "p2", "team": "t1", "status": "ready"}]
    w2 = [{"proposal_id": "p1", "team": "t1", "status": "run"}]
    w3 = [{"proposal_id": "p3", "team": "t2", "status": "ready"}, {"proposal_id": "p2", "team": "t1", "status": "stale"}]
    once = reduce([], [w1, w2, w3])
    assert once == reduce(reduce(reduce([], [w1]), [w2]), [w3]) == [{"proposal_id": "p3", "team": "t2", "status": "ready"}]


class SlowTeamScientist(SearchScientist):
    """SearchScientist whose team ``t1`` passes while the baseline runs, then is stuck in its
    first proposal until ``release`` is set (``gave_up`` if that never came); every critique
    approves, so each of team t2's turns leaves approved work."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.stuck = threading.Event()
        self.gave_up = False

    def propose(self, view: LabView, **kwargs: Any) -> Any:
        if kwargs["team"].team_id == "t1" and not self.release.is_set():
            if view.champion.metric is None:
                return ProposeReply()  # nothing to try yet: t1 has no approved work to run
            self.stuck.set()
            self.gave_up = not self.release.wait(30.0)
            self.stuck.clear()
            self.release.set()
        return super().propose(view, **kwargs)

    def critique(self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> CritiqueReply:
        return CritiqueReply(review=ReviewDraft(approve=True, reason="scripted: approve"))


def test_a_slow_thinking_team_does_not_delay_another_teams_next_dispatch() -> None:
    # Two teams on two slots. Team t1 gets stuck in its first proposal after the baseline; it
    # is released when, while it is stuck, a run has ended and another has started on the
    # freed slot: the order of the runs' own starts and ends, never a clock. That must happen,
    # with team t2's work: with refills a branch never waits for a slower team's turn, and tend
    # gives a freed slot what the branches approved (the round's board) while others think.
    # Before, t2's claim waited for t1's turn: nothing started until t1 gave up after 30 s.
    sci = SlowTeamScientist()
    order: list[tuple[str, tuple[Any, ...], bool]] = []  # (start|end, run, t1 stuck then)
    lock = threading.Lock()

    def run(change: Change, seed: int) -> float:
        key = (tuple(sorted(change.knobs.items())), seed)
        with lock:
            stuck = sci.stuck.is_set()
            if stuck and ("end", True) in {(kind, was) for kind, _, was in order}:
                sci.release.set()  # a slot freed while t1 was stuck took new work
            order.append(("start", key, stuck))
        threading.Event().wait(0.3)
        with lock:
            order.append(("end", key, sci.stuck.is_set()))
        return synth_loss()(change, seed)

    settings = LabSettings(n_teams=2, experimenters_per_team=1, max_experiments=10, stop_after_no_keep=None)
    final, _ = run_lab(TASK, run, sci, settings, slots=2)
    assert not sci.gave_up, "while t1 was thinking, no freed slot took new work"
    stuck = [(kind, key) for kind, key, was_stuck in order if was_stuck]
    first_end = next(i for i, (kind, _) in enumerate(stuck) if kind == "end")
    refilled = [key for kind, key in stuck[first_end:] if kind == "start"]
    assert refilled
    team = {(tuple(sorted(e["result"]["change"]["knobs"].items())), e["result"]["seed"]): e["proposal"]["team"]
            for e in final["log"] if e["kind"] == "explore"}
    assert {team[k] for k in refilled} == {"t2"}  # team t2's next experiment, t1 still thinking
    assert_every_submission_logged_once(final)
