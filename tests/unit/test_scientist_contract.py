"""The contract every Scientist passes: each implementation supplies one entry to the ``impl`` fixture.

What the lab graph relies on, whoever thinks: hypotheses on the task's own axes, each falsifiable and
owning a never-tested axis while one is left, with votes that index the drafts; at most ``n``
proposals, tagged consistently with the change they make, inside the search space, on distinct axes,
never the champion again nor a configuration already run or queued; a review with a reason (or none,
with the reason in ``dropped``); replies that depend on the view alone, from any number of threads;
usage that counts exactly the model calls made (none for an offline scientist).

Implementations: ``SearchScientist``; ``LLMScientist`` over :class:`ScriptedChatModel` answering as a
model that reads the prompt (``llm``), and as one that makes a different well-formed but wrong answer
on each try before a right one (``llm-sloppy``), so that the LLM scientist's own checks are what keeps
each mistake out. The package has no human scientist yet; one joins by adding an entry here.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from lab_helpers import champion, dead_end, entry, make_synth_task, proposal, team, view

from autosci_graph.lab.changes import champion_key, change_key, change_to_run
from autosci_graph.scientists.base import LabView, ProposalDraft, ProposeReply, RecalledMemory, Scientist
from autosci_graph.scientists.llm import LLMScientist
from autosci_graph.scientists.search import SearchScientist
from autosci_graph.state import Change, CodeIdea, Proposal, Team, Usage
from autosci_graph.task import CategoricalKnob, ResearchTask
from tests.support import ScriptedChatModel

AGENTS = ["analyst-1", "analyst-2", "experimenter-1", "experimenter-2"]

# -- the lab states every implementation is asked about ------------------------------------------

TASK = make_synth_task("contract")
TRAIN = "import torch\n\n\ndef block(x):\n    x = norm(x)\n    return relu(x)\n"
IDEAS = [
    CodeIdea(name="gelu", description="GELU instead of ReLU (Hendrycks & Gimpel, 2016)", axis="mlp", files=["train.py"],
             diff="--- a/train.py\n+++ b/train.py\n@@ -6,1 +6,1 @@\n-    return relu(x)\n+    return gelu(x)\n"),
    CodeIdea(name="rmsnorm", description="RMSNorm instead of LayerNorm (Zhang & Sennrich, 2019)", axis="norm", files=["train.py"],
             diff="--- a/train.py\n+++ b/train.py\n@@ -5,1 +5,1 @@\n-    x = norm(x)\n+    x = rms_norm(x)\n"),
]
CODE_TASK = TASK.model_copy(update={"name": "contract-code", "editable": ("train.py",)})


def _fresh() -> LabView:
    """The start of a run: the default configuration, nothing measured, no team yet."""
    return view(TASK, champ=champion(TASK, metric=1.3))


def _history() -> LabView:
    """Mid-run: a kept lr step (measured on two seeds), discards, a dead end, two teams, one run queued."""
    lr = {"lr": 0.003}
    log = [
        entry(1, "lr", "increase", lr, outcome="keep", gain=0.2, metric=1.10),
        entry(2, "lr", "increase", lr, outcome="keep", gain=0.19, metric=1.12, seed=1, kind="confirm"),
        entry(3, "dropout", "increase", {**lr, "dropout": 0.4}, gain=-0.05, metric=1.16),
        entry(4, "width", "increase", {**lr, "width": 64}, gain=0.01, metric=1.10),
        entry(5, "act", "set", {**lr, "act": "relu"}, gain=-0.02, metric=1.13),
    ]
    teams = [team("t1", ("lr", "width")), team("t2", ("dropout", "act"))]
    # lr 0.0003 is the move the search scientist would rank first here: queued, it must not come again.
    queued = [proposal("width", "decrease", {"width": 16}, pid="q1", team="t2"),
              proposal("lr", "decrease", {"lr": 0.0003}, pid="q2", team="t2")]
    return view(TASK, log, champ=champion(TASK, metric=1.11, **lr), teams=teams, in_flight=queued,
                dead_ends=[dead_end("dropout", 0.4, eid="e3")])


def _code() -> LabView:
    """A task with editable code and two shipped ideas, each an untested ``code:`` axis of its own."""
    v = view(CODE_TASK, champ=champion(CODE_TASK, metric=1.3))
    know = v.knowledge.model_copy(update={"untested_axes": v.knowledge.untested_axes + [i.axis_tag for i in IDEAS]})
    return v.model_copy(update={"ideas": IDEAS, "champion_files": {"train.py": TRAIN}, "knowledge": know})


VIEWS: dict[str, Callable[[], LabView]] = {"fresh": _fresh, "history": _history, "code": _code}
#: The team that proposes in each view.
TEAMS: dict[str, Team] = {"fresh": team("t1", ("lr", "width")), "history": team("t1", ("lr", "width")),
                          "code": team("t1", ("code:mlp", "lr"))}
RECALLED = [RecalledMemory(experiment_id="e-old", text="lr 0.5 diverged: loss went to NaN", outcome="crash",
                           status="diverged", axis="lr", direction="increase", knobs={"lr": 0.5}, score=0.95)]

# -- a chat model that reads the prompt as a model would ------------------------------------------

_NUMERIC = re.compile(r"^  (\w+): (float|int) in \[([^,\]]+), ([^\]]+)\]( \(log scale\))?, default [^;]*; champion (\S+?)(?:; step: .*)?$", re.M)
_CATEGORICAL = re.compile(r"^  (\w+): one of (\[.*\]), default .*; champion (\S+)$", re.M)


@dataclass(frozen=True)
class _Knob:
    name: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    integer: bool = False
    choices: tuple[str, ...] = ()
    champion: Any = None

    def moved(self, down: bool = False) -> Any:
        """A bold move: 30% of the (log) range from the champion, inside the bounds."""
        if self.choices:
            return next(c for c in self.choices if c != self.champion)
        f = math.log if self.log else (lambda x: x)
        g = math.exp if self.log else (lambda x: x)
        u = (f(float(self.champion)) - f(self.low)) / (f(self.high) - f(self.low))
        u = u - 0.3 if down or u + 0.3 > 1 else u + 0.3
        value = g(f(self.low) + u * (f(self.high) - f(self.low)))
        return int(round(value)) if self.integer else float(f"{value:.4g}")

    def direction(self, value: Any) -> str:
        return "set" if self.choices else ("increase" if value > float(self.champion) else "decrease")


def _knobs(prompt: str) -> dict[str, _Knob]:
    out: dict[str, _Knob] = {}
    for name, kind, low, high, log, champ in _NUMERIC.findall(prompt):
        value = int(champ) if kind == "int" else float(champ)
        out[name] = _Knob(name, float(low), float(high), bool(log), kind == "int", champion=value)
    for name, choices, champ in _CATEGORICAL.findall(prompt):
        out[name] = _Knob(name, choices=tuple(ast.literal_eval(choices)), champion=champ)
    return out


class ContractModel:
    """Answers each role from the prompt alone (so it is deterministic). With ``mistakes``, try
    number ``k`` makes the ``k``-th mistake of its role in a well-formed answer, and the try after the
    last mistake is right: a mistake that the scientist's checks miss comes back in the reply."""

    ORGANIZE_MISTAKES = ("unknown_axis", "bare_code_axis", "owns_no_untested_axis", "ranking_out_of_range")
    PROPOSE_MISTAKES = ("restates_champion", "shared_axis", "out_of_bounds", "unknown_knob", "knob_change_on_code_axis",
                        "categorical_tagged_increase", "direction_contradicts_move")
    CRITIQUE_MISTAKES = ("generic_reason",)

    def __init__(self, *, mistakes: bool) -> None:
        self.mistakes = mistakes

    def __call__(self, messages: list[BaseMessage]) -> str:
        system, prompt = messages[0].text, messages[1].text
        attempt = (len(messages) - 2) // 2  # each repair round adds the answer and the complaint
        if "organizing the lab's teams" in system:
            return json.dumps(self._organize(prompt, self._mistake(self.ORGANIZE_MISTAKES, attempt)))
        if "an experimenter on team" in system:
            return json.dumps(self._propose(prompt, self._mistake(self.PROPOSE_MISTAKES, attempt)))
        if "reviewing a proposal" in system:
            return json.dumps(self._critique(prompt, self._mistake(self.CRITIQUE_MISTAKES, attempt)))
        raise AssertionError(f"unknown role in system prompt: {system[:120]!r}")

    def _mistake(self, mistakes: tuple[str, ...], attempt: int) -> str | None:
        return mistakes[attempt] if self.mistakes and attempt < len(mistakes) else None

    @staticmethod
    def _untested(prompt: str) -> list[str]:
        line = re.search(r"^UNTESTED AXES: (.*)$", prompt, re.M)
        return [] if line is None or line.group(1) == "none" else line.group(1).split(", ")

    def _organize(self, prompt: str, mistake: str | None) -> dict[str, Any]:
        n_teams = int(re.search(r"Post hypotheses for (\d+) teams", prompt).group(1))  # type: ignore[union-attr]
        untested, knobs = self._untested(prompt), list(_knobs(prompt))
        axes = list(dict.fromkeys(untested + knobs))
        groups = [axes[i::n_teams] for i in range(n_teams)]
        hypotheses = [{"statement": f"{g[0]} is mis-set at the champion and moving it improves the metric",
                       "prediction": f"a {g[0]} move beats the champion by more than 2 sigma",
                       "falsification": f"3 refuting discards on {', '.join(g)} with no keep", "axes": g,
                       "promise": round(0.8 - 0.1 * i, 2)} for i, g in enumerate(groups) if g]
        ranking = list(range(len(hypotheses)))
        # Each wrong draft has exactly one fault: the untested axis it also owns keeps the others apart.
        owns = untested[:1]
        wrong = {"unknown_axis": ["batch_size"] + owns, "bare_code_axis": ["architecture"] + owns,
                 "owns_no_untested_axis": [a for a in knobs if a not in untested][:1] or ["batch_size"]}
        if mistake in wrong:
            hypotheses.insert(0, {**hypotheses[0], "axes": wrong[mistake], "promise": 0.99})
            ranking = [0] + [r + 1 for r in ranking]
        if mistake == "ranking_out_of_range":
            ranking = [len(hypotheses) + 3] + ranking
        return {"hypotheses": hypotheses, "ranking": ranking}

    def _propose(self, prompt: str, mistake: str | None) -> dict[str, Any]:
        n = int(re.search(r"Propose (\d+) experiments", prompt).group(1))  # type: ignore[union-attr]
        knobs = _knobs(prompt)
        team_axes = ast.literal_eval(re.search(r"^YOUR TEAM: \S+ \[\w+\] axes (\[.*?\]):", prompt, re.M).group(1))  # type: ignore[union-attr]
        dead = set(re.findall(r"^  (\w+) increase value=", prompt.split("DEAD ENDS", 1)[-1], re.M)) if "DEAD ENDS" in prompt else set()
        order = [a for a in team_axes if a in knobs] + [a for a in knobs if a not in team_axes]
        good = []
        for name in order:
            k = knobs[name]
            value = k.moved(down=name in dead)
            good.append({"axis": name, "direction": k.direction(value), "knobs": {name: value}, "bold": not k.choices,
                         "rationale": f"{name} is untested or moved too little so far; a bold step tells us more",
                         "prediction": "the metric improves by more than 2 sigma"})
        a, b = knobs[order[0]], knobs[order[1]]
        cat = next(k for k in knobs.values() if k.choices)
        wrong: dict[str, dict[str, Any]] = {
            "restates_champion": {**good[0], "knobs": {a.name: a.champion}, "bold": False},
            "shared_axis": {**good[0], "knobs": {a.name: a.moved(down=not (a.name in dead))}, "bold": False},
            "out_of_bounds": {**good[1], "knobs": {b.name: b.high * 10}, "direction": "increase"},
            "unknown_knob": {**good[1], "axis": "batch_size", "knobs": {"batch_size": 64}},
            "knob_change_on_code_axis": {**good[1], "axis": "code:tuning"},
            "categorical_tagged_increase": {**good[order.index(cat.name)], "direction": "increase"},
            "direction_contradicts_move": {**good[1], "direction": "decrease" if good[1]["direction"] == "increase" else "increase"},
        }
        if mistake is None:
            return {"proposals": good[:n]}
        if mistake == "shared_axis":
            return {"proposals": [good[0], wrong[mistake]] + [g for g in good[1:] if g["axis"] != a.name][: n - 2]}
        return {"proposals": [wrong[mistake]] + [g for g in good if g["axis"] != wrong[mistake]["axis"]][: n - 1]}

    def _critique(self, prompt: str, mistake: str | None) -> dict[str, Any]:
        p = json.loads(re.search(r"^PROPOSAL TO REVIEW: (\{.*\})$", prompt, re.M).group(1))  # type: ignore[union-attr]
        if mistake == "generic_reason":
            return {"approve": True, "reason": "This looks like a good and sensible idea overall."}
        return {"approve": True, "reason": f"{p['axis']} {p['direction']} is tagged, not a recorded dead end, and worth one run"}


# -- the implementations -------------------------------------------------------------------------


@dataclass
class Impl:
    """One implementation under contract."""

    name: str
    make: Callable[[], Scientist]
    #: Usage as the model side counts it so far (input/output tokens, calls); zero offline.
    spent: Callable[[Scientist], Usage]
    #: A scientist whose model gives no usable answer at all, when there can be one.
    confused: Callable[[], Scientist] | None = None


def _llm(mistakes: bool) -> Scientist:
    model = ScriptedChatModel(responder=ContractModel(mistakes=mistakes))
    most = max(map(len, (ContractModel.ORGANIZE_MISTAKES, ContractModel.PROPOSE_MISTAKES, ContractModel.CRITIQUE_MISTAKES)))
    return LLMScientist(model, max_repairs=most if mistakes else 0)


def _model_spent(s: Scientist) -> Usage:
    model = s.model  # type: ignore[attr-defined]
    calls = len(model.calls)
    return Usage(input_tokens=calls * model.input_tokens, output_tokens=calls * model.output_tokens, calls=calls)


def _confused() -> Scientist:
    return LLMScientist(ScriptedChatModel(responder=lambda messages: "I would try a higher learning rate."), max_repairs=1)


IMPLS = {
    "search": Impl("search", SearchScientist, spent=lambda s: Usage()),
    "llm": Impl("llm", lambda: _llm(False), spent=_model_spent, confused=_confused),
    "llm-sloppy": Impl("llm-sloppy", lambda: _llm(True), spent=_model_spent, confused=_confused),
}


@pytest.fixture(params=list(IMPLS))
def impl(request: pytest.FixtureRequest) -> Impl:
    return IMPLS[request.param]


# -- helpers -------------------------------------------------------------------------------------


def _propose(s: Scientist, v: str, n: int = 2, author: str = "experimenter-1") -> ProposeReply:
    return s.propose(VIEWS[v](), team=TEAMS[v], author=author, recalled=RECALLED, n=n)


def _axis_ok(task: ResearchTask, axis: str) -> bool:
    return axis in task.knobs or (axis.startswith("code:") and bool(task.editable))


def _tag_problem(task: ResearchTask, champ: dict[str, Any], d: ProposalDraft) -> str | None:
    """Why a draft's tags do not describe its change, or ``None``."""
    if d.axis is None or d.direction is None:
        return "untagged"
    if d.axis.startswith("code:"):
        return None if d.direction == "code" and d.diff and d.diff.strip() else "a code axis without a code change"
    knob = task.knobs.get(d.axis)
    if knob is None or d.axis not in d.knobs:
        return f"axis {d.axis!r} is not a knob the draft changes ({sorted(d.knobs)})"
    old, new = champ.get(d.axis, knob.default), d.knobs[d.axis]
    if new == old:
        return f"{d.axis} stays at the champion's {old!r}"
    if isinstance(knob, CategoricalKnob):
        return None if d.direction == "set" else f"categorical {d.axis} tagged {d.direction}"
    actual = "increase" if float(new) > float(old) else "decrease"  # type: ignore[arg-type]
    return None if d.direction == actual else f"{d.axis} {old} -> {new} tagged {d.direction}"


def _fingerprint(reply: Any) -> str:
    return reply.model_dump_json()


# -- organize ------------------------------------------------------------------------------------


@pytest.mark.parametrize("v", list(VIEWS))
def test_organize_posts_falsifiable_hypotheses_on_the_tasks_own_axes(impl: Impl, v: str) -> None:
    lab = VIEWS[v]()
    reply = impl.make().organize(lab, n_teams=2, agents=AGENTS)
    assert len(reply.hypotheses) >= 2, reply.dropped
    untested = set(lab.knowledge.untested_axes)
    for h in reply.hypotheses:
        assert h.axes and all(_axis_ok(lab.task, a) for a in h.axes), h.axes
        assert h.statement.strip() and h.prediction.strip() and h.falsification.strip()
        assert h.author in AGENTS
        if untested:
            assert untested & set(h.axes), f"{h.axes} owns none of the untested axes {sorted(untested)}"


def test_organize_votes_one_per_agent_for_an_existing_draft_by_someone_else(impl: Impl) -> None:
    reply = impl.make().organize(_fresh(), n_teams=2, agents=AGENTS)
    assert len(reply.votes) == len(AGENTS)
    for agent, vote in zip(AGENTS, reply.votes):
        assert 0 <= vote < len(reply.hypotheses)
        if any(h.author != agent for h in reply.hypotheses):
            assert reply.hypotheses[vote].author != agent, f"{agent} voted for its own draft"


def test_code_ideas_are_axes_a_team_may_own(impl: Impl) -> None:
    lab = _code()
    reply = impl.make().organize(lab, n_teams=2, agents=AGENTS)
    owned = {a for h in reply.hypotheses for a in h.axes}
    assert {i.axis_tag for i in IDEAS} <= owned  # every untested idea is some team's to try


# -- propose -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("v", list(VIEWS))
def test_proposals_are_tagged_valid_distinct_and_new(impl: Impl, v: str, n: int) -> None:
    lab = VIEWS[v]()
    reply = _propose(impl.make(), v, n=n)
    assert 1 <= len(reply.proposals) <= n, reply.dropped
    task = lab.task
    for d in reply.proposals:
        assert task.validate_overrides(dict(d.knobs)) == d.knobs  # inside the search space, values typed
        assert _tag_problem(task, lab.champion.config, d) is None, _tag_problem(task, lab.champion.config, d)
        key = change_key(task, change_to_run(lab.champion, Change(knobs=d.knobs, diff=d.diff)))
        assert key != champion_key(task, lab.champion), f"{d} restates the champion"
        assert all(key != change_key(task, e.result.change) for e in lab.experiments), f"{d} already ran"
        assert all(key != change_key(task, change_to_run(lab.champion, q.change)) for q in lab.in_flight), f"{d} is queued"
        if d.axis == "lr" and d.direction == "increase":  # the recalled failure: lr 0.5 diverged
            assert float(d.knobs["lr"]) < 0.5 or d.what_is_different.strip(), f"{d} repeats a recalled failure"
    axes = [d.axis for d in reply.proposals]
    assert len(set(axes)) == len(axes), f"drafts of one turn share an axis: {axes}"


def test_two_proposals_fill_the_turn_with_a_bold_move(impl: Impl) -> None:
    reply = _propose(impl.make(), "fresh", n=2)
    assert len(reply.proposals) == 2, reply.dropped
    assert any(d.bold for d in reply.proposals)


# -- critique ------------------------------------------------------------------------------------


def _to_review() -> Proposal:
    return proposal("lr", "increase", {"lr": 0.02}, author="experimenter-2", pid="p-review", bold=True)


@pytest.mark.parametrize("v", list(VIEWS))
def test_critique_gives_a_review_with_a_reason(impl: Impl, v: str) -> None:
    lab = VIEWS[v]()
    reply = impl.make().critique(lab, proposal=_to_review(), reviewer="analyst-1", recalled=RECALLED)
    assert reply.review is not None, reply.dropped
    assert isinstance(reply.review.approve, bool) and reply.review.reason.strip()


def test_an_unusable_answer_gives_no_review_and_says_why(impl: Impl) -> None:
    if impl.confused is None:
        pytest.skip(f"{impl.name} has no model that could answer unusably")
    lab = _fresh()
    reply = impl.confused().critique(lab, proposal=_to_review(), reviewer="analyst-1", recalled=[])
    assert reply.review is None
    assert reply.dropped and all(r.strip() for r in reply.dropped)


# -- statelessness and threads -------------------------------------------------------------------


def _acts(s: Scientist, v: str) -> list[str]:
    lab = VIEWS[v]()
    return [
        _fingerprint(s.organize(lab, n_teams=2, agents=AGENTS)),
        _fingerprint(_propose(s, v, n=2)),
        _fingerprint(s.critique(lab, proposal=_to_review(), reviewer="analyst-1", recalled=RECALLED)),
    ]


def test_the_same_view_gets_the_same_answer_whatever_came_before(impl: Impl) -> None:
    first = _acts(impl.make(), "history")
    seasoned = impl.make()
    for v in VIEWS:  # a scientist that has answered other views, and this one, keeps nothing of it
        _acts(seasoned, v)
    assert _acts(seasoned, "history") == first


def test_concurrent_proposals_equal_sequential_ones(impl: Impl) -> None:
    jobs = [(v, author) for v in VIEWS for author in ("experimenter-1", "experimenter-2")]
    sequential = [_fingerprint(_propose(impl.make(), v, author=a)) for v, a in jobs]
    shared = impl.make()
    barrier = threading.Barrier(len(jobs))

    def work(job: tuple[str, str]) -> str:
        barrier.wait(timeout=30)  # all threads call the one scientist at the same moment
        return _fingerprint(_propose(shared, job[0], author=job[1]))

    with ThreadPoolExecutor(len(jobs)) as pool:
        assert list(pool.map(work, jobs)) == sequential


def test_the_async_hooks_answer_as_the_sync_ones_awaited_together(impl: Impl) -> None:
    sequential = _acts(impl.make(), "history")
    s, lab = impl.make(), VIEWS["history"]()

    async def together() -> list[Any]:
        return list(await asyncio.gather(
            s.aorganize(lab, n_teams=2, agents=AGENTS),
            s.apropose(lab, team=TEAMS["history"], author="experimenter-1", recalled=RECALLED, n=2),
            s.acritique(lab, proposal=_to_review(), reviewer="analyst-1", recalled=RECALLED),
        ))

    assert [_fingerprint(r) for r in asyncio.run(together())] == sequential


# -- usage ---------------------------------------------------------------------------------------


def test_each_reply_counts_exactly_the_model_calls_it_made(impl: Impl) -> None:
    s = impl.make()
    lab = _history()
    for act in (lambda: s.organize(lab, n_teams=2, agents=AGENTS), lambda: _propose(s, "history"),
                lambda: s.critique(lab, proposal=_to_review(), reviewer="analyst-1", recalled=[])):
        before = impl.spent(s)
        reply = act()
        after = impl.spent(s)
        counted = (reply.usage.calls, reply.usage.input_tokens, reply.usage.output_tokens)
        assert counted == (after.calls - before.calls, after.input_tokens - before.input_tokens,
                           after.output_tokens - before.output_tokens)
        assert 0 <= reply.usage.failed_calls <= reply.usage.calls and reply.usage.cost_usd >= 0


def test_describe_names_the_scientist_for_the_report(impl: Impl) -> None:
    s = impl.make()
    described = s.describe()
    assert described["name"] == s.name and described["class"] == type(s).__name__
    json.dumps(described)  # it goes into the run's report
