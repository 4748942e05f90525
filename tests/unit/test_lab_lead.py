"""The lab's lead (autosci_graph/lab/lead.py): teams build on the best measured configuration, and
a seed goes to it only when one could promote it or its steps keep failing."""

from __future__ import annotations

from lab_helpers import make_synth_task, run_lab, synth_loss

from autosci_graph.graphs.context import LabSettings
from autosci_graph.lab.candidates import rebased_change
from autosci_graph.lab.lead import apply_direction, direction, lead_of, runs_to_verdict, shared_ancestor, worth_a_seed
from autosci_graph.lab.promotion import PromotionRule
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Candidate, Champion, Change, Proposal, RunResult

TASK = make_synth_task()
DEFAULT = TASK.default_config()
CHAMP = Champion(experiment_id=None, config=dict(DEFAULT), metric=2.0, seeds=[0, 1], metrics_by_seed={"0": 2.0, "1": 2.0})
RULE = PromotionRule()
METRIC = TASK.metric


def cand(cid: str, knobs: dict, *, base: Champion = CHAMP, status: str = "open", proposal_knobs: dict | None = None,
         increments: list[str] | None = None) -> Candidate:
    p = Proposal(proposal_id=cid, author="experimenter-1", team="t1", axis=next(iter(proposal_knobs or knobs)), direction="set",
                 change=Change(knobs=proposal_knobs or knobs))
    return Candidate(candidate_id=cid, proposal=p, change=Change(knobs={**base.config, **knobs}), base=base,
                     status=status, increments=increments or [])  # type: ignore[arg-type]


def runs(metric: float, *seeds: int) -> list[RunResult]:
    return [RunResult(experiment_id=f"r{s}", status="ok", change=Change(), seed=s, metric_name="loss", metric=metric) for s in seeds]


def test_a_seed_goes_to_the_lead_only_when_one_more_could_carry_it_over_the_bar() -> None:
    # σ = 0.1 on 5 degrees of freedom: a gain of 1.0 on one seed projects far over the bar ...
    assert worth_a_seed(METRIC, [2.0, 2.0], [1.0], 0.1, 5, RULE, failed_steps=0)
    # ... a gain of 0.1 does not, so teams step on from it instead of confirming it ...
    assert not worth_a_seed(METRIC, [2.0, 2.0], [1.9], 0.1, 5, RULE, failed_steps=0)
    # ... unless steps from it keep failing: a lucky lead shows itself on a fresh seed.
    assert worth_a_seed(METRIC, [2.0, 2.0], [1.9], 0.1, 5, RULE, failed_steps=RULE.recheck_after_failed_steps)
    # No noise measured yet: a seed measures it. Identical repeats: one run already decided.
    assert worth_a_seed(METRIC, [2.0], [1.9], None, 0, RULE, failed_steps=0)
    assert not worth_a_seed(METRIC, [2.0, 2.0], [1.0], 0.0, 3, RULE, failed_steps=5)


def test_the_seed_counts_the_degree_of_freedom_it_adds_to_the_noise_estimate() -> None:
    # A gain of 20σ on two seeds projects to t = 20: short of the bar at one degree of freedom
    # (235.8), over it at the two the seed brings (19.2).
    projection_only = PromotionRule(min_noise_dof=0)
    assert RULE.bar(1) > 200 and RULE.bar(2) < 20
    assert worth_a_seed(METRIC, [2.0, 2.0], [0.0], 0.1, 1, projection_only, failed_steps=0)
    assert not worth_a_seed(METRIC, [2.0, 2.0], [0.5], 0.1, 1, projection_only, failed_steps=0)


def test_a_gaining_lead_gets_a_seed_while_the_noise_rests_on_too_few_repeats() -> None:
    # A 4σ gain (t = 4 on two seeds) could never clear the t bar on two degrees of freedom
    # (19.2), so without repeats it would wait forever; below min_noise_dof it gets its seed,
    # which measures the noise too, since it would clear the 3σ bar were σ known.
    assert RULE.min_noise_dof == 3
    assert worth_a_seed(METRIC, [2.0, 2.0], [1.6], 0.1, 2, RULE, failed_steps=0)
    assert not worth_a_seed(METRIC, [2.0, 2.0], [1.6], 0.1, 3, RULE, failed_steps=0)  # enough repeats: the t bar decides
    # A gain that could not promote even with σ known waits, as does a lead that does not gain.
    assert not worth_a_seed(METRIC, [2.0, 2.0], [1.8], 0.1, 2, RULE, failed_steps=0)
    assert not worth_a_seed(METRIC, [2.0, 2.0], [2.1], 0.1, 2, RULE, failed_steps=0)


def test_the_lead_is_the_best_measured_configuration_that_beats_the_champion_whatever_its_verdict() -> None:
    moved = CHAMP.model_copy(update={"experiment_id": "e9", "config": {**DEFAULT, "lr": 0.004}})
    cands = [cand("a", {"lr": 0.002}), cand("b", {"width": 64}), cand("c", {"act": "relu"}, status="rejected"),
             cand("d", {"dropout": 0.2}, base=moved), cand("e", {"act": "gelu"}), cand("p", {"width": 32}, status="promoted"),
             cand("w", {"width": 128})]
    measured = {"a": runs(1.8, 0), "b": runs(1.6, 0), "c": runs(1.4, 0), "d": runs(1.3, 0), "e": [], "p": runs(0.5, 0),
                "w": runs(2.5, 0)}
    pick = lambda m: (lambda c: m[c.candidate_id])  # noqa: E731
    # d was measured against another champion, and is still the best place to search from; p is
    # a champion already; e has no run.
    assert lead_of(TASK, cands, CHAMP, pick(measured)).candidate_id == "d"  # type: ignore[union-attr]
    # c: futility closed it (too small a step to certify), yet it beats the champion's mean.
    assert lead_of(TASK, cands, CHAMP, pick(measured), exclude="d").candidate_id == "c"  # type: ignore[union-attr]
    # Nothing beats the champion's mean (2.0): no lead, teams build on the champion itself.
    worse = {k: runs(2.1, 0) if v else v for k, v in measured.items()}
    assert lead_of(TASK, cands, CHAMP, pick(worse)) is None
    tie = {**measured, "a": runs(1.3, 0)}
    assert lead_of(TASK, cands, CHAMP, pick(tie)).candidate_id == "a"  # type: ignore[union-attr]  # the earlier id


def test_once_a_lead_clears_the_full_bar_over_the_default_the_refinement_bar_decides_its_seed() -> None:
    # σ = 0.1 on 10 dof, the champion at 1.0 on two seeds, the default at 2.0 on three. A lead at
    # 0.8 (2σ) cannot project over the 3σ bar on one more seed, but it is far over the default,
    # so what it must clear is the refinement bar, and its seed is worth running.
    rule = PromotionRule()
    champion, default = [1.0, 1.0], [2.0, 2.0, 2.0]
    assert not worth_a_seed(METRIC, champion, [0.8], 0.1, 10, rule, failed_steps=0)
    assert worth_a_seed(METRIC, champion, [0.8], 0.1, 10, rule, failed_steps=0, default=default)
    off = PromotionRule(refine_sigmas=None)
    assert not worth_a_seed(METRIC, champion, [0.8], 0.1, 10, off, failed_steps=0, default=default)


def test_a_step_from_the_lead_rebases_with_the_whole_direction_and_its_code_in_order() -> None:
    # Stepped from a lead that moved lr; its own proposal only moved width.
    c = cand("s", {"lr": 0.002, "width": 64}, proposal_knobs={"width": 64}, increments=["A", "B"])
    knobs, increments = direction(c)
    assert knobs == {"lr": 0.002, "width": 64} and increments == ["A", "B"]
    new = CHAMP.model_copy(update={"experiment_id": "e9", "config": {**DEFAULT, "act": "gelu"}, "diff": "X"})
    change = apply_direction(new, knobs, increments, stack=lambda diff, inc: (diff or "") + inc)
    assert change.knobs == {**new.config, "lr": 0.002, "width": 64} and change.diff == "XAB"
    rebased, why = rebased_change(TASK, c, CHAMP, new, stack=lambda diff, inc: (diff or "") + inc)
    assert rebased is not None and rebased.knobs["lr"] == 0.002 and rebased.diff == "XAB", why


def test_teams_step_from_the_lead_and_a_lead_built_over_several_steps_is_promoted() -> None:
    settings = LabSettings(n_teams=3, max_experiments=40, stop_after_no_keep=None, seed=0)
    final, _ = run_lab(TASK, synth_loss(), SearchScientist(), settings, slots=2, synchronous=True)
    cands = {c["candidate_id"]: Candidate.model_validate(c) for c in final["candidates"]}
    stepped = [c for c in cands.values() if c.parent and not c.rebased_from and "-on-" not in c.candidate_id]
    assert stepped, "no team stepped from the lead"
    for c in stepped:
        # A step's change is the lead it stepped from with the step's own knobs applied.
        assert c.change.knobs == {**cands[c.parent].change.knobs, **c.proposal.change.knobs}  # type: ignore[index]
    promoted = [c for c in cands.values() if c.status == "promoted"]
    assert any(c.parent for c in promoted), "no promotion of a step taken from an unpromoted lead"
    # Every champion the lab reported was certified: promoted by the rule, never by lead-ness.
    notes = [e["note"] for e in final["log"] if e["outcome"] == "keep" and e["kind"] != "baseline"]
    assert notes and all("clears the" in n or "one run decides" in n for n in notes)


def test_a_sibling_of_the_promoted_step_is_rebased_from_the_lead_they_share() -> None:
    # a stepped from the champion (lr); b and c both stepped from a: b moved lr further, c moved width.
    a = cand("a", {"lr": 0.002})
    b = cand("b", {"lr": 0.004}).model_copy(update={"parent": "a"})
    c = cand("c", {"lr": 0.002, "width": 64}).model_copy(update={"parent": "a"})
    candidates = {x.candidate_id: x for x in (a, b, c)}
    assert shared_ancestor(c, b, candidates) is a and shared_ancestor(a, b, candidates) is None
    # From the champion, c's direction includes a's lr step, which b (now the champion) moved:
    # rebased whole, it would be moot or would undo b's lr. From a, it is its own width step.
    assert direction(c) == ({"lr": 0.002, "width": 64}, [])
    assert direction(c, since=a) == ({"width": 64}, [])
    new = Champion(experiment_id="b", config=dict(b.change.knobs), metric=1.5, seeds=[0], metrics_by_seed={"0": 1.5})
    whole, why = rebased_change(TASK, c, CHAMP, new)
    assert whole is None and "moot" in why
    change, _ = rebased_change(TASK, c, CHAMP, new, since=a)
    assert change is not None and change.knobs["lr"] == 0.004 and change.knobs["width"] == 64


def test_runs_to_verdict_counts_the_leads_seeds_and_the_champion_seeds_that_keep_them_paired() -> None:
    # σ = 0.1 on 10 dof, the champion at 2.0 on two seeds. A lead 5σ better on one seed needs one
    # more seed (t = 0.5 / (0.1·√(1/2 + 1/2)) = 5 over the bar on 11 dof, 3.9): one experiment.
    assert runs_to_verdict(METRIC, [2.0, 2.0], [1.5], 0.1, 10, RULE) == 1
    # At 3σ it needs seeds of its own beyond the champion's two, each with a champion seed.
    three = runs_to_verdict(METRIC, [2.0, 2.0], [1.7], 0.1, 10, RULE)
    assert three is not None and three > 2 and three % 2 == 1  # one unpaired, then pairs
    # The smaller the gain, the more experiments; one the bar cannot reach within max_seeds: None.
    assert runs_to_verdict(METRIC, [2.0, 2.0], [1.5], 0.1, 10, RULE) < three  # type: ignore[operator]
    assert runs_to_verdict(METRIC, [2.0, 2.0], [1.95], 0.1, 10, RULE) is None
    # No gain, no noise estimate, or identical repeats (one run decided): nothing to run.
    assert runs_to_verdict(METRIC, [2.0, 2.0], [2.1], 0.1, 10, RULE) is None
    assert runs_to_verdict(METRIC, [2.0], [1.5], None, 0, RULE) is None
    assert runs_to_verdict(METRIC, [2.0, 2.0], [1.5], 0.0, 3, RULE) is None
    # Far over the default, the refinement bar applies: a 1.5σ lead becomes decidable.
    assert runs_to_verdict(METRIC, [1.0, 1.0], [0.85], 0.1, 10, RULE) is None
    assert runs_to_verdict(METRIC, [1.0, 1.0], [0.8], 0.1, 10, RULE, default=[2.0, 2.0, 2.0]) is not None


def _endgame_run(endgame: bool) -> dict:
    # Seeds-only promotion: with the model's evidence this easy bowl is certified within a dozen
    # experiments, and no lead is left open near the end for the endgame to seed.
    settings = LabSettings(n_teams=2, max_experiments=30, stop_after_no_keep=None, seed=2, endgame=endgame,
                           promotion=PromotionRule(model_evidence=False))
    final, _ = run_lab(TASK, synth_loss(0.1), SearchScientist(), settings, slots=2, synchronous=True)
    return final


def test_near_the_end_of_the_budget_the_leads_seeds_come_before_explorations() -> None:
    final = _endgame_run(True)
    events = [e for e in final["events"] if e["type"] == "endgame"]
    assert events, "no endgame on a noisy task whose lead was open three experiments before the end"
    for ev in events:
        assert 0 < ev["experiments_left"] <= ev["runs_needed"]
        # What the lab submitted next: the lead's next seed (a free slot may still explore).
        after = final["submitted"][ev["at_experiment"]:]
        assert after[0]["kind"] == "confirm" and after[0]["candidate_of"] == ev["experiment_id"]
    assert len(final["log"]) == 30  # the budget holds
    # Off, the same run explores to the end instead.
    off = _endgame_run(False)
    assert not [e for e in off["events"] if e["type"] == "endgame"]
    at = events[0]["at_experiment"]
    ids = lambda subs: [x["experiment_id"] for x in subs]  # noqa: E731  (stamps differ)
    assert ids(off["submitted"][:at]) == ids(final["submitted"][:at])
    assert off["submitted"][at]["kind"] == "explore"
