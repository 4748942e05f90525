"""The human critic: a proposal waits for a person's verdict before it costs compute.

With ``LabSettings.human_approval`` a team's ``submit`` starts nothing: the proposal it chose (it
already passed the automatic rules, the code pre-check and a critic) waits in the lab's
``awaiting`` list, and the lab's ``approve`` node, after the round's branches, asks about each one
with LangGraph's ``interrupt()``. The caller answers with ``Command(resume=verdict)``::

    {"action": "approve"}                                   # runs as proposed
    {"action": "reject", "reason": "too big a step"}        # never runs; the reason is a review
    {"action": "edit", "knobs": {"lr": 0.01}, "reason": ""} # knobs merged over the proposal's;
    {"action": "edit", "diff": "--- a/train.py ..."}        # a diff replaces its code change

An edited proposal is checked again, as a team's is, before it runs: the code pre-check, then the
automatic rules (:func:`autosci_graph.lab.critique.auto_review`); a refused edit never runs and
its refusal is recorded as a review. An answer that is none of the above is asked again, with the
error in the interrupt's payload.

Why a node of its own: on resume LangGraph runs the interrupted node again from its start and
hands each ``interrupt()`` call the answer given at the same position. The team branches ask
scientists (LLMs), so an interrupt there would repeat their calls and could change the proposals
under the answers. ``approve`` asks no scientist: it reads the state, asks its questions in a fixed
order, and acts only once every answer is in, so running it again is cheap and asks the same
questions in the same order.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from autosci_graph.graphs.context import LabContext, emit
from autosci_graph.graphs.recall import recall_failures
from autosci_graph.graphs.state import LabState, Notebook
from autosci_graph.graphs.team import check_code, start_exploration
from autosci_graph.lab.changes import StackingError, change_key, change_to_run, has_code
from autosci_graph.lab.critique import auto_review
from autosci_graph.scientists.base import LabView
from autosci_graph.state import Champion, Change, Proposal, Review
from autosci_graph.task import KnobValue

#: What the interrupt asks, for a client that shows the payload as it is (LangGraph Studio).
QUESTION = ('Run this experiment? Resume with {"action": "approve"}, {"action": "reject", "reason": "..."} '
            'or {"action": "edit", "knobs": {...}, "diff": "..."}.')


class Verdict(BaseModel):
    """A human's answer to one proposal (the ``resume`` value of its interrupt)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "reject", "edit"]
    #: Why; required to reject (the reason is kept as the human's review).
    reason: str = ""
    #: ``edit``: knob values merged over the proposal's.
    knobs: dict[str, KnobValue] = Field(default_factory=dict)
    #: ``edit``: a unified diff that replaces the proposal's code change (``""`` drops it).
    diff: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> "Verdict":
        if self.action == "reject" and not self.reason.strip():
            raise ValueError("a rejection needs a reason")
        if self.action == "edit" and not self.knobs and self.diff is None:
            raise ValueError("an edit needs knobs or a diff")
        if self.action != "edit" and (self.knobs or self.diff is not None):
            raise ValueError(f"knobs and diff belong to an edit, not to {self.action!r}")
        return self


def parse_verdict(answer: Any) -> Verdict:
    """The verdict in a resume value; ``"approve"`` alone is accepted. ``ValueError`` otherwise."""
    if answer == "approve":
        answer = {"action": "approve"}
    try:
        return Verdict.model_validate(answer)
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"] for e in exc.errors())) from None


def question(entry: dict[str, Any], state: LabState, position: int, of: int) -> dict[str, Any]:
    """The interrupt's payload: the proposal, its diff, the full configuration it would run and
    the reviews it passed."""
    p = Proposal.model_validate(entry["proposal"])
    reviews = [{"reviewer": r["reviewer"], "approve": r["approve"], "reason": r["reason"], "rule": r.get("rule")}
               for r in state.get("reviews", []) if r["proposal_id"] == p.proposal_id]
    checks = ["automatic rules: passed"] + (["code pre-check: passed"] if has_code(p.change) else [])
    return {"type": "approval", "question": QUESTION, "position": position, "of": of,
            "proposal_id": p.proposal_id, "team": p.team, "author": p.author, "axis": p.axis, "direction": p.direction,
            "bold": p.bold, "knobs": dict(p.change.knobs), "rationale": p.rationale, "prediction": p.prediction,
            "diff": p.change.diff, "config": dict(entry["change"]["knobs"]), "checks": checks, "reviews": reviews}


def ask(payload: dict[str, Any]) -> Verdict:
    """Interrupt until the answer is a verdict; a wrong answer is asked again, with its error."""
    shown = payload
    while True:
        answer = interrupt(shown)
        try:
            return parse_verdict(answer)
        except ValueError as exc:
            shown = {**payload, "error": f"not a verdict ({exc}): {str(answer)[:200]}"}


def approve(state: LabState, runtime: Runtime[LabContext]) -> dict[str, Any]:
    """Ask a human about each proposal the round's teams chose, then run the approved and the
    accepted edits. Nothing happens before the last answer: a resumed run of this node asks the
    same questions in the same order and acts once."""
    ctx = runtime.context
    waiting = sorted(state.get("awaiting", []), key=lambda d: (d.get("turn", 0), d["proposal_id"]))
    if not waiting:
        return {}
    verdicts = [ask(question(d, state, i + 1, len(waiting))) for i, d in enumerate(waiting)]

    nb = Notebook(state, ctx.task)
    base, _ = nb.lead()
    view = nb.view(seed=ctx.settings.seed, on_lead=True)
    runs = {d["key"] for d, v in zip(waiting, verdicts) if v.action == "approve"}
    submitted: list[dict[str, Any]] = []
    candidates: list[dict[str, Any]] = []
    reviews: list[Review] = []
    events: list[dict[str, Any]] = []
    for d, v in zip(waiting, verdicts):
        p = Proposal.model_validate(d["proposal"])
        event: dict[str, Any] = {"type": "human_verdict", "proposal_id": p.proposal_id, "team": p.team,
                                 "action": v.action, "reason": v.reason, "at": time.time()}
        if v.action == "reject":
            reviews.append(Review(proposal_id=p.proposal_id, reviewer="human", approve=False, rule="human_rejected",
                                  reason=v.reason))
        else:
            change, key = Change.model_validate(d["change"]), d["key"]
            if v.action == "edit":
                original, p = p, edited(p, v)
                event["edited_into"] = p.proposal_id
                reviews.append(Review(proposal_id=original.proposal_id, reviewer="human", approve=False, rule="human_edited",
                                      reason=f"edited by a human into {p.proposal_id}" + (f": {v.reason}" if v.reason else "")))
                refusal, change, key = recheck(ctx, p, base, view, runs, own=key)
                if refusal is not None:
                    reviews.append(refusal)
                    event.update(refused=refusal.rule, refusal=refusal.reason)
                    events.append(event)
                    continue
                runs.add(key)
            reviews.append(Review(proposal_id=p.proposal_id, reviewer="human", approve=True,
                                  reason=v.reason or ("edited and approved by a human" if v.action == "edit" else "approved by a human")))
            sub, cand = start_exploration(ctx, nb, p, change, key, holder=d.get("holder"))
            submitted.append(sub.to_state())
            candidates.append(cand.to_state())
            event["experiment_id"] = sub.experiment_id
        events.append(event)
    for e in events:
        emit(e)
    return {"awaiting": [dict(d, status="answered") for d in waiting], "submitted": submitted, "candidates": candidates,
            "reviews": [r.to_state() for r in reviews], "events": events}


def edited(p: Proposal, v: Verdict) -> Proposal:
    """The proposal as the human edited it, under an id of its own."""
    diff = p.change.diff if v.diff is None else (v.diff or None)
    note = "edited by a human" + (f": {v.reason}" if v.reason else "")
    change = Change(knobs={**p.change.knobs, **v.knobs}, diff=diff, description=f"{p.change.description} ({note})")
    return p.model_copy(update={"proposal_id": f"{p.proposal_id}-edited", "change": change,
                                "rationale": f"{p.rationale} ({note})"})


def recheck(ctx: LabContext, p: Proposal, base: Champion, view: LabView, taken: set[str],
            own: str = "") -> tuple[Review | None, Change, str]:
    """An edited proposal through the checks a team's passes: the code pre-check, the automatic
    rules, and no other run of this round on the same configuration (``own``: the key the
    proposal claimed before the edit). A refusal, or the change to run and its key."""
    refused = check_code(ctx, p, base)
    if refused is not None:
        return refused, Change(), ""
    try:
        change = change_to_run(base, p.change, stack=ctx.stack, description=p.rationale)
    except StackingError as exc:
        return Review(proposal_id=p.proposal_id, reviewer="precheck", approve=False, rule="patch_does_not_apply",
                      reason=f"The code change does not apply to the champion's files: {exc}"), Change(), ""
    recalled = recall_failures(ctx.memory, p.rationale or str(p.change.knobs), task=ctx.task.name, k=ctx.settings.recall_k)
    review = auto_review(p, view, recalled, ctx.settings.rules, candidate=change)
    if review is not None:
        return review, Change(), ""
    key = change_key(ctx.task, change)
    if key != own and (key in taken or not ctx.claim(key)):
        return Review(proposal_id=p.proposal_id, reviewer="rules", approve=False, rule="duplicate",
                      reason="Another proposal of this round runs this exact configuration; propose a different value."), Change(), ""
    return None, change, key


__all__ = ["QUESTION", "Verdict", "approve", "ask", "parse_verdict", "question"]
