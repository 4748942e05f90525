"""LLMScientist against a scripted chat model: prompts, validation, bounded repair, usage, threads."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest_llm import lab_view, recalled  # noqa: F401  (fixtures)
from langchain_core.messages import BaseMessage

from autosci_graph.scientists._json import AnswerFormatError, extract_json_object
from autosci_graph.scientists.llm import LLMScientist
from autosci_graph.scientists.providers import ProviderError
from tests.support import ScriptedChatModel
from tests.support.lab import make_proposal, make_team


def proposals(*items: dict) -> str:
    return json.dumps({"proposals": list(items)})


LR_UP = {"axis": "lr", "direction": "increase", "knobs": {"lr": 0.008}, "bold": True,
         "rationale": "lr increase gave the only keep so far", "prediction": "val_bpb -0.03"}
ACT = {"axis": "activation", "direction": "set", "knobs": {"activation": "gelu"},
       "rationale": "activation is untested; gelu is smoother", "prediction": "val_bpb -0.01"}
REVIEW = {"approve": True, "reason": "lr increase is the only axis with a measured keep (+0.04 > 2 sigma)"}


def scientist(*responses: str, **kwargs) -> tuple[LLMScientist, ScriptedChatModel]:  # type: ignore[no-untyped-def]
    model = ScriptedChatModel(responses=list(responses))
    return LLMScientist(model, **kwargs), model


# ---------------------------------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        'Here you go:\n```json\n{"a": 1}\n```\nDone.',
        "<think>maybe {b: 2}</think>\n{\"a\": 1}",
        'Sure! {"a": 1} and then {"b": 2}',
    ],
)
def test_extract_json_object_finds_the_first_object(text: str) -> None:
    assert extract_json_object(text) == {"a": 1}


@pytest.mark.parametrize("text", ["", "no json here", "[1, 2]", '{"a": 1'])
def test_extract_json_object_explains_failure(text: str) -> None:
    with pytest.raises(AnswerFormatError, match="JSON"):
        extract_json_object(text)


# ---------------------------------------------------------------------------------------------- propose


def test_propose_valid_answer_gives_tagged_drafts_and_prompt_carries_state(lab_view, recalled) -> None:  # noqa: F811
    sci, model = scientist(proposals(LR_UP, ACT))
    reply = sci.propose(lab_view, team=make_team(), author="exp-1", recalled=recalled)
    assert [(p.axis, p.direction, p.knobs) for p in reply.proposals] == [
        ("lr", "increase", {"lr": 0.008}), ("activation", "set", {"activation": "gelu"}),
    ]
    assert reply.dropped == []
    prompt = model.prompt_texts()[0]
    # the recalled failure, the champion, noise, dead ends, untested axes and knob bounds are all there
    for expected in ("e-old-7", "n_layer 6 diverged", "val_bpb=1.91", "sigma=0.006", "overfits less",
                     "UNTESTED AXES: n_layer, activation", "lr: float in [0.0001, 0.03]", "team-a"):
        assert expected in prompt


def test_malformed_answer_is_repaired_with_the_error_sent_back(lab_view, recalled) -> None:  # noqa: F811
    sci, model = scientist("I would try a higher learning rate.", proposals(LR_UP, ACT))
    reply = sci.propose(lab_view, team=make_team(), author="exp-1", recalled=recalled)
    assert len(reply.proposals) == 2 and reply.dropped == []
    assert len(model.calls) == 2
    repair = model.calls[1][-1].text
    assert "no JSON object" in repair
    assert model.calls[1][-2].text == "I would try a higher learning rate."  # the bad answer is in context
    assert (reply.usage.calls, reply.usage.failed_calls) == (2, 1)


def test_answer_still_malformed_after_max_repairs_is_dropped_not_raised(lab_view, recalled) -> None:  # noqa: F811
    sci, model = scientist("nope", "{bad json", '{"proposals": []}', max_repairs=2)
    reply = sci.propose(lab_view, team=make_team(), author="exp-1", recalled=recalled)
    assert reply.proposals == []
    assert len(reply.dropped) == 1 and "after 3 attempts" in reply.dropped[0]
    assert len(model.calls) == 3
    assert (reply.usage.calls, reply.usage.failed_calls) == (3, 3)


def test_out_of_bounds_knob_is_repaired_with_knob_and_bounds_named(lab_view, recalled) -> None:  # noqa: F811
    bad = {**LR_UP, "knobs": {"lr": 0.5}}
    sci, model = scientist(proposals(bad, ACT), proposals(LR_UP, ACT))
    reply = sci.propose(lab_view, team=make_team(), author="exp-1", recalled=recalled)
    assert [p.knobs for p in reply.proposals] == [{"lr": 0.008}, {"activation": "gelu"}]
    repair = model.calls[1][-1].text
    assert "lr=0.5" in repair and "[0.0001, 0.03]" in repair


def test_unknown_knob_repair_lists_valid_knobs(lab_view, recalled) -> None:  # noqa: F811
    bad = {**LR_UP, "axis": "batch_size", "knobs": {"batch_size": 64}}
    sci, model = scientist(proposals(bad, ACT), proposals(LR_UP, ACT))
    sci.propose(lab_view, team=make_team(), author="exp-1", recalled=recalled)
    repair = model.calls[1][-1].text
    assert "unknown knob 'batch_size'" in repair and "n_layer: int in [1, 8]" in repair


def test_repeat_of_recalled_failure_is_sent_back(lab_view, recalled) -> None:  # noqa: F811
    repeat = {"axis": "n_layer", "direction": "increase", "knobs": {"n_layer": 6}, "bold": True,
              "rationale": "depth is untested and cheap", "prediction": "val_bpb -0.05"}
    fixed = {**repeat, "knobs": {"n_layer": 4}}
    sci, model = scientist(proposals(repeat, ACT), proposals(fixed, ACT))
    reply = sci.propose(lab_view, team=make_team(), author="exp-1", recalled=recalled)
    assert "e-old-7" in model.calls[1][-1].text
    assert reply.proposals[0].knobs == {"n_layer": 4}


@pytest.mark.parametrize(
    ("first", "complaint"),
    [
        (proposals({**LR_UP, "bold": False}, ACT), "bold"),
        (proposals(LR_UP, {**LR_UP, "knobs": {"lr": 0.01}}), "shares axis 'lr'"),
        (proposals({**LR_UP, "direction": "decrease"}, ACT), "direction says decrease"),
        (proposals({**LR_UP, "knobs": {"lr": 0.004}}, ACT), "changes nothing"),
        (proposals({**LR_UP, "axis": "dropout"}, ACT), "axis 'dropout' is not among"),
        (proposals(LR_UP), "give 2 proposals"),
    ],
)
def test_method_rules_are_enforced_by_repair(lab_view, recalled, first: str, complaint: str) -> None:  # noqa: F811
    sci, model = scientist(first, proposals(LR_UP, ACT))
    reply = sci.propose(lab_view, team=make_team(), author="exp-1", recalled=recalled)
    assert complaint in model.calls[1][-1].text
    assert len(reply.proposals) == 2


def test_valid_items_survive_when_repair_runs_out(lab_view, recalled) -> None:  # noqa: F811
    bad = {**ACT, "knobs": {"activation": "swish"}}
    sci, _ = scientist(proposals(LR_UP, bad), max_repairs=0)
    reply = sci.propose(lab_view, team=make_team(), author="exp-1", recalled=recalled)
    assert [p.axis for p in reply.proposals] == ["lr"]
    assert "swish" in reply.dropped[0] and "kept 1" in reply.dropped[0]


def test_review_feedback_reaches_the_proposer(lab_view, recalled) -> None:  # noqa: F811
    from autosci_graph.state import Review

    view = lab_view.model_copy(update={"feedback": [
        Review(proposal_id="p-9", reviewer="ana-2", approve=False, reason="dropout 0.4 is a recorded dead end")
    ]})
    sci, model = scientist(proposals(LR_UP, ACT))
    sci.propose(view, team=make_team(), author="exp-1", recalled=recalled)
    assert "dropout 0.4 is a recorded dead end" in model.prompt_texts()[0]


# ---------------------------------------------------------------------------------------------- critique


def test_critique_gives_a_specific_reason_and_sees_recalled_failures(lab_view, recalled) -> None:  # noqa: F811
    vague = json.dumps({"approve": True, "reason": "This seems like a sensible idea to me overall."})
    sci, model = scientist(vague, json.dumps(REVIEW))
    proposal = make_proposal(author="exp-1")
    reply = sci.critique(lab_view, proposal=proposal, reviewer="ana-2", recalled=recalled)
    assert reply.review is not None and reply.review.approve and "2 sigma" in reply.review.reason
    assert "e-old-7" in model.prompt_texts()[0] and '"lr": 0.006' in model.prompt_texts()[0]
    assert "too generic" in model.calls[1][-1].text


def test_critique_dropped_gives_no_review(lab_view, recalled) -> None:  # noqa: F811
    sci, _ = scientist("lgtm", "lgtm", max_repairs=1)
    reply = sci.critique(lab_view, proposal=make_proposal(), reviewer="ana-2", recalled=recalled)
    assert reply.review is None and reply.dropped


def test_critique_of_own_proposal_is_a_programming_error(lab_view) -> None:  # noqa: F811
    sci, _ = scientist(json.dumps(REVIEW))
    with pytest.raises(ValueError, match="own proposal"):
        sci.critique(lab_view, proposal=make_proposal(author="ana-2"), reviewer="ana-2", recalled=[])


def test_critic_model_is_used_for_critiques(lab_view) -> None:  # noqa: F811
    main, critic = ScriptedChatModel(responses=[]), ScriptedChatModel(responses=[json.dumps(REVIEW)])
    sci = LLMScientist(main, critic_model=critic)
    sci.critique(lab_view, proposal=make_proposal(), reviewer="ana-2", recalled=[])
    assert len(critic.calls) == 1 and main.calls == []
    assert sci.describe()["critic_model"] == "scripted"


# ---------------------------------------------------------------------------------------------- organize


def test_organize_posts_hypotheses_owning_untested_axes_with_votes(lab_view) -> None:  # noqa: F811
    h = lambda axes, s: {"statement": s, "prediction": "val_bpb drops by > 2 sigma",  # noqa: E731
                         "falsification": "3 discards on these axes, no keep", "axes": axes}
    bad = {"hypotheses": [h(["lr"], "lr is too low for the batch size")], "ranking": [0]}
    good = {"hypotheses": [h(["lr", "n_layer"], "depth is the bottleneck at this lr"),
                           h(["activation"], "gelu trains faster than relu here")], "ranking": [1, 0]}
    sci, model = scientist(json.dumps(bad), json.dumps(good))
    reply = sci.organize(lab_view, n_teams=2, agents=["ana-1", "ana-2", "ana-3"])
    repair = model.calls[1][-1].text
    assert "never-tested axis" in repair and "post at least 2 hypotheses" in repair
    assert [d.axes for d in reply.hypotheses] == [["lr", "n_layer"], ["activation"]]
    assert [d.author for d in reply.hypotheses] == ["ana-1", "ana-2"]
    # ana-1 and ana-3 prefer the top-ranked draft 1; ana-2 wrote it, so votes for draft 0
    assert reply.votes == [1, 0, 1]


# ---------------------------------------------------------------------------------------------- usage, errors, threads


def test_usage_is_counted_and_priced(lab_view, recalled) -> None:  # noqa: F811
    sci, model = scientist("junk", proposals(LR_UP, ACT), price_per_1k_input=2.0, price_per_1k_output=10.0)
    reply = sci.propose(lab_view, team=make_team(), author="exp-1", recalled=recalled)
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (26, 10)
    assert reply.usage.cost_usd == pytest.approx(26 / 1000 * 2.0 + 10 / 1000 * 10.0)
    assert sci.total_usage == reply.usage


def test_provider_failure_is_a_project_exception(lab_view) -> None:  # noqa: F811
    def boom(messages: list[BaseMessage]) -> str:
        raise ConnectionRefusedError("connection refused")

    sci = LLMScientist(ScriptedChatModel(responder=boom))
    with pytest.raises(ProviderError, match="could not be called.*connection refused"):
        sci.propose(lab_view, team=make_team(), author="exp-1", recalled=[])
    assert sci.total_usage.failed_calls == 1


def test_provider_failure_after_a_repair_round_reports_the_usage_spent(lab_view) -> None:  # noqa: F811
    answers = iter(["not json"])

    def respond(messages: list[BaseMessage]) -> str:
        try:
            return next(answers)
        except StopIteration:
            raise TimeoutError("read timed out") from None

    sci = LLMScientist(ScriptedChatModel(responder=respond))
    with pytest.raises(ProviderError) as info:
        sci.propose(lab_view, team=make_team(), author="exp-1", recalled=[])
    assert info.value.usage.calls == 2 and info.value.usage.input_tokens == 13
    assert sci.total_usage.calls == 2


def test_parallel_calls_share_one_scientist_safely(lab_view, recalled) -> None:  # noqa: F811
    barrier = threading.Barrier(6)

    def respond(messages: list[BaseMessage]) -> str:
        return proposals(LR_UP, ACT) if "Propose" in messages[-1].text else json.dumps(REVIEW)

    model = ScriptedChatModel(responder=respond)
    sci = LLMScientist(model)

    def work(i: int) -> int:
        barrier.wait()
        return len(sci.propose(lab_view, team=make_team(), author=f"exp-{i}", recalled=recalled).proposals)

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(work, range(6))) == [2] * 6
    assert sci.total_usage.calls == 6 and sci.total_usage.input_tokens == 6 * 13


def test_max_repairs_must_be_non_negative() -> None:
    with pytest.raises(ValueError):
        LLMScientist(ScriptedChatModel(), max_repairs=-1)
