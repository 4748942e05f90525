"""What an LLM scientist must answer, per role, and the checks an answer passes before it is used.

Two layers: a pydantic schema per role (shape and types; its JSON schema goes into the prompt), then
checks against the task and the lab state that a schema cannot express (known knobs inside their
bounds, a real change relative to the champion, tags consistent with the change, two proposals on
different axes, at least one bold move, the automatic critique rules of
:mod:`~autosci_graph.lab.critique` (so a repeat of a recalled failure is sent back), a specific
review reason). Each check yields a message written to be sent back to the model as a repair instruction.

A code diff is checked here only for what no file content could fix (neither edit format, a file
that is not editable). Whether it applies to the champion's files is left to the team graph's
precheck, which uses the tolerant applier and sends its error back to the author as a review.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from autosci_graph.lab.critique import CritiqueRules, auto_review
from autosci_graph.scientists.base import HypothesisDraft, LabView, ProposalDraft, RecalledMemory, ReviewDraft
from autosci_graph.state import Change, Direction, Proposal
from autosci_graph.task import CategoricalKnob, FloatKnob, Knob, KnobValue, ResearchTask

#: A review reason shorter than this (in words) is an empty review, a failure mode of the method.
MIN_REASON_WORDS = 5
_GENERIC_REASONS = {"looks good", "lgtm", "ok", "okay", "approved", "fine", "good idea", "rejected", "no"}
_SEARCH_LINE = re.compile(r"^\s*<{5,9} ?(SEARCH|ORIGINAL)\s*$")


class _Answer(BaseModel):
    # Extra keys are ignored, not rejected: a harmless extra field is not worth a repair round.
    model_config = ConfigDict(extra="ignore")


class HypothesisAnswer(_Answer):
    statement: str = Field(min_length=8, description="A falsifiable claim about what improves the metric and why.")
    prediction: str = Field(min_length=3, description="The measurable outcome expected if the claim holds.")
    falsification: str = Field(min_length=3, description="The result that would refute the claim.")
    axes: list[str] = Field(min_length=1, description="Axes (knob names, or code-change tags) the team explores.")
    promise: float = Field(default=0.5, ge=0.0, le=1.0, description="Your estimate, 0..1, that it pays off.")


class OrganizeAnswer(_Answer):
    hypotheses: list[HypothesisAnswer] = Field(min_length=1)
    ranking: list[int] = Field(default_factory=list, description="Indices into hypotheses, best first.")


class ProposalAnswer(_Answer):
    axis: str = Field(min_length=1, description="The axis this change moves: the main knob changed, or code:<what> for a code change.")
    direction: Direction = Field(description="increase / decrease (numeric knob), set (categorical), code (diff).")
    knobs: dict[str, KnobValue] = Field(default_factory=dict, description="Knob overrides relative to the champion.")
    diff: str | None = Field(default=None, description=(
        "Code changes only (direction code): an increment against the editable files as shown (the champion's code), "
        "as a unified diff (--- a/FILE, +++ b/FILE, @@ hunks) or SEARCH/REPLACE blocks (FILE, <<<<<<< SEARCH, exact "
        "old lines, =======, new lines, >>>>>>> REPLACE); old and context lines copied exactly, without line numbers."))
    rationale: str = Field(min_length=10, description="Why, citing measured effects or the hypothesis.")
    prediction: str = Field(min_length=3, description="Expected effect on the metric.")
    bold: bool = Field(default=False, description="True for a large move: at least 10% of the knob's (log) range (e.g. 2x a learning rate), or >=10% model size.")
    what_is_different: str = Field(default="", description="Required when near a recalled failure: what differs.")


class ProposeAnswer(_Answer):
    proposals: list[ProposalAnswer] = Field(min_length=1)


class ReviewAnswer(_Answer):
    approve: bool
    reason: str = Field(min_length=20, description="The specific evidence behind the decision.")


@dataclass
class Checked:
    """The usable part of an answer and what is wrong with the rest."""

    items: list = field(default_factory=list)  # type: ignore[type-arg]
    #: Problems with single items; those items are not in ``items``.
    item_errors: list[str] = field(default_factory=list)
    #: Problems with the answer as a whole (the items may still be usable).
    set_errors: list[str] = field(default_factory=list)
    #: Organize only: one vote per agent, as an index into ``items``.
    votes: list[int] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return self.item_errors + self.set_errors


def describe_knob(name: str, knob: Knob) -> str:
    """``lr: float in [0.0001, 0.03] (log scale), default 0.003`` — also used in repair messages."""
    if isinstance(knob, CategoricalKnob):
        return f"{name}: one of {list(knob.choices)}, default {knob.default!r}"
    scale = " (log scale)" if knob.log else ""
    return f"{name}: {knob.type} in [{knob.low}, {knob.high}]{scale}, default {knob.default}"


def known_axes(view: LabView) -> set[str]:
    return set(view.task.knobs) | set(view.knowledge.effects) | set(view.knowledge.untested_axes)


def check_hypotheses(answer: OrganizeAnswer, view: LabView, *, n_teams: int, agents: list[str]) -> Checked:
    """Hypotheses on known axes, each owning an untested axis while any is left."""
    out = Checked()
    axes_ok = known_axes(view)
    untested = set(view.knowledge.untested_axes)
    code_ok = bool(view.task.editable)
    new_index: dict[int, int] = {}
    for i, h in enumerate(answer.hypotheses):
        # With editable files a team may own a code axis not tried yet, but only by its tag, code:<what>.
        unknown = [a for a in h.axes if a not in axes_ok and not (code_ok and a.startswith("code:"))]
        if unknown:
            code = " or code:<what> for a code change" if code_ok else ""
            out.item_errors.append(
                f"hypotheses.{i}: unknown axes {unknown}; axes must be knob names: {sorted(view.task.knobs)}{code}"
            )
            continue
        if untested and not untested & set(h.axes):
            out.item_errors.append(
                f"hypotheses.{i}: must own at least one never-tested axis, one of {sorted(untested)}"
            )
            continue
        author = agents[i % len(agents)] if agents else ""
        new_index[i] = len(out.items)
        out.items.append(
            HypothesisDraft(
                statement=h.statement, prediction=h.prediction, falsification=h.falsification,
                axes=h.axes, author=author, promise=h.promise,
            )
        )
    if len(answer.hypotheses) < n_teams:
        out.set_errors.append(f"post at least {n_teams} hypotheses (got {len(answer.hypotheses)})")
    bad = [r for r in answer.ranking if not 0 <= r < len(answer.hypotheses)]
    if bad:
        out.set_errors.append(f"ranking holds indices {bad} outside 0..{len(answer.hypotheses) - 1}")
    out.votes = _votes(out.items, [new_index[r] for r in answer.ranking if r in new_index], agents)
    return out


def _votes(drafts: list[HypothesisDraft], ranking: list[int], agents: list[str]) -> list[int]:
    """One vote per agent: the best-ranked draft it did not write (the model's ranking, then promise)."""
    order = list(dict.fromkeys(ranking + sorted(range(len(drafts)), key=lambda i: -drafts[i].promise)))
    votes = []
    for agent in agents:
        choice = next((i for i in order if drafts[i].author != agent), order[0] if order else None)
        if choice is not None:
            votes.append(choice)
    return votes


def _check_diff(diff: str, task: ResearchTask) -> str | None:
    """What makes a diff unusable whatever the files hold. Whether it matches the champion's files
    is judged by the graph's precheck with the tolerant applier (its error goes back as a review),
    so a hunk with wrong numbers or drifted whitespace is never refused here."""
    if not task.editable:
        return "this task accepts no code changes (no editable files); change knobs instead"
    lines = diff.split("\n")
    if not any(line.startswith("@@") or _SEARCH_LINE.match(line) for line in lines):
        return ("diff is neither a unified diff (@@ hunks) nor SEARCH/REPLACE blocks (<<<<<<< SEARCH ... ======= ... "
                ">>>>>>> REPLACE); write the change in one of the two formats")
    targets = {_header_path(line[4:]) for line in lines if line.startswith("+++ ")}
    outside = sorted(t for t in targets if t and t not in task.editable)
    if outside:
        return f"diff touches {outside}; only {list(task.editable)} may be edited (no new or deleted files)"
    return None


def _header_path(raw: str) -> str:
    path = raw.split("\t")[0].strip().strip('"')
    return (path[2:] if path.startswith(("a/", "b/")) else path).removeprefix("./")


def step_examples(knob: Knob, old: KnobValue, size: int = 1) -> list[tuple[KnobValue, Direction]]:
    """One step up and one down from ``old``, inside the knob's bounds (x2 and /2 on a log scale,
    10% of the range otherwise, at least 1 for an integer; ``size`` times that); none for a
    categorical knob."""
    if isinstance(knob, CategoricalKnob):
        return []
    value = float(old)  # type: ignore[arg-type]
    if isinstance(knob, FloatKnob) and knob.log and value > 0:
        up, down = value * 2 ** size, value / 2 ** size
    else:
        step = 0.1 * size * (knob.high - knob.low)
        step = step if isinstance(knob, FloatKnob) else max(1.0, step)
        up, down = value + step, value - step

    def cast(v: float) -> KnobValue:
        return float(f"{v:.4g}") if isinstance(knob, FloatKnob) else int(round(v))

    steps: list[tuple[KnobValue, Direction]] = [(cast(min(knob.high, up)), "increase"), (cast(max(knob.low, down)), "decrease")]
    return [(v, d) for v, d in steps if v != cast(value)]


def _step_hint(axis: str, task: ResearchTask, champion: dict[str, KnobValue]) -> str:
    """Concrete values for a step of ``axis``, for the repair message: a small model that copied
    the champion's value fixes it from an example, rarely from the rule alone."""
    knob = task.knobs.get(axis)
    if knob is None:
        return ""
    old = champion.get(axis, knob.default)
    options = [f"{axis} {v} ({d})" for v, d in step_examples(knob, old)]
    return f" (the champion has {axis} = {old}; e.g. {' or '.join(options)})" if options else ""


def _check_one(p: ProposalAnswer, view: LabView) -> tuple[ProposalDraft | None, list[str]]:
    task, champion = view.task, view.champion.config
    errors: list[str] = []
    clean: dict[str, KnobValue] = {}
    for name, value in p.knobs.items():
        knob = task.knobs.get(name)
        if knob is None:
            valid = "; ".join(describe_knob(n, k) for n, k in task.knobs.items()) or "none"
            errors.append(f"unknown knob {name!r}; valid knobs: {valid}")
            continue
        try:
            clean[name] = knob.validate_value(value)
        except (TypeError, ValueError) as exc:
            errors.append(f"knob {name}={value!r} is invalid ({exc}); allowed: {describe_knob(name, knob)}")
    if p.diff:
        diff_error = _check_diff(p.diff, task)
        if diff_error:
            errors.append(diff_error)
    if p.direction == "code" and not p.diff:
        errors.append("direction 'code' needs a diff; use increase/decrease/set for knob changes")
    if errors:
        return None, errors
    if not p.diff and all(v == champion.get(k, task.knobs[k].default) for k, v in clean.items()):
        hint = _step_hint(p.axis, task, champion)
        return None, ["it changes nothing: every knob equals the champion's value; move at least one knob" + hint]
    if p.axis in task.knobs and p.direction != "code":
        if p.axis not in clean:
            return None, [f"axis {p.axis!r} is not among the knobs it changes ({sorted(clean)})"]
        knob, new, old = task.knobs[p.axis], clean[p.axis], champion.get(p.axis, task.knobs[p.axis].default)
        if isinstance(knob, CategoricalKnob):
            if p.direction != "set":
                return None, [f"{p.axis} is categorical: tag a change of it direction set, not {p.direction}"]
        else:
            actual = "increase" if float(new) > float(old) else "decrease"
            if p.direction != actual:
                return None, [f"direction says {p.direction} but {p.axis} goes from {old} to {new} ({actual})"]
    elif p.axis not in task.knobs and not (p.axis.startswith("code:") and p.direction == "code"):
        return None, [f"axis {p.axis!r} is not a knob: a knob change's axis is the knob it moves "
                      f"({', '.join(task.knobs)}), a code change's is code:<what> with direction code"]
    return (
        ProposalDraft(
            axis=p.axis, direction=p.direction, knobs=clean, diff=p.diff, rationale=p.rationale,
            prediction=p.prediction, bold=p.bold, what_is_different=p.what_is_different,
        ),
        [],
    )


def check_proposals(
    answer: ProposeAnswer, view: LabView, *, team: str, author: str, recalled: list[RecalledMemory], n: int,
    rules: CritiqueRules = CritiqueRules(),
) -> Checked:
    """Proposals valid against the task, passing the automatic critique rules (so a repeat of a
    recalled failure is sent back before a critic sees it), on distinct axes, one bold when ``n >= 2``."""
    out = Checked()
    seen_axes: dict[str, int] = {}
    for i, p in enumerate(answer.proposals[:n]):
        draft, errors = _check_one(p, view)
        if draft is not None:
            rejection = auto_review(_as_proposal(draft, i, team=team, author=author), view, recalled, rules)
            if rejection is not None:
                draft, errors = None, [f"would be rejected ({rejection.rule}): {rejection.reason}"]
        if draft is None:
            out.item_errors.extend(f"proposals.{i}: {e}" for e in errors)
            continue
        if p.axis in seen_axes:
            out.item_errors.append(
                f"proposals.{i}: shares axis {p.axis!r} with proposals.{seen_axes[p.axis]}; use a different axis"
            )
            continue
        seen_axes[p.axis] = i
        out.items.append(draft)
    if n >= 2 and len(answer.proposals) >= 2 and not any(p.bold for p in answer.proposals[:n]):
        out.set_errors.append(
            "mark at least one proposal bold: a large move (e.g. doubling or halving a knob, "
            ">=10% change in model size) and set bold=true"
        )
    if n >= 2 and len(answer.proposals) < n:
        out.set_errors.append(f"give {n} proposals on different axes (got {len(answer.proposals)})")
    return out


def _as_proposal(draft: ProposalDraft, i: int, *, team: str, author: str) -> Proposal:
    return Proposal(
        proposal_id=f"draft-{i}", author=author, team=team, axis=draft.axis, direction=draft.direction,
        change=Change(knobs=draft.knobs, diff=draft.diff), rationale=draft.rationale, prediction=draft.prediction,
        bold=draft.bold, what_is_different=draft.what_is_different,
    )


def _evidence_terms(view: LabView, proposal: Proposal, recalled: list[RecalledMemory]) -> set[str]:
    terms = {"sigma", "noise", "dead end", "dead-end", "recalled", "memory", "untested", "never tested"}
    terms |= set(view.task.knobs) | set(view.knowledge.effects) | {proposal.axis or ""}
    terms |= {e.result.experiment_id for e in view.experiments} | {d.experiment_id for d in view.dead_ends}
    terms |= {m.experiment_id for m in recalled}
    return {t.lower() for t in terms if t}


def check_review(
    answer: ReviewAnswer, view: LabView, *, proposal: Proposal, recalled: list[RecalledMemory]
) -> Checked:
    """A review whose reason cites evidence (a number, a knob or axis, an experiment, the noise
    floor, a dead end or a recalled failure); near-empty reviews are a failure mode of the method."""
    reason = answer.reason.strip()
    lowered = reason.lower()
    generic = lowered.rstrip(".!") in _GENERIC_REASONS or len(reason.split()) < MIN_REASON_WORDS
    cites = any(ch.isdigit() for ch in reason) or any(t in lowered for t in _evidence_terms(view, proposal, recalled))
    if generic or not cites:
        return Checked(
            item_errors=[
                "reason is too generic: name the specific evidence behind approve/reject (measured effects "
                "with numbers, the knob or axis, dead ends, recalled failures by id, the noise floor)"
            ]
        )
    return Checked(items=[ReviewDraft(approve=answer.approve, reason=reason)])
