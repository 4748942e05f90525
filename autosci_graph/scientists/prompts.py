"""Role prompts for :class:`~autosci_graph.scientists.llm.LLMScientist`.

Each prompt is a system message (the role and its rules) and a human message (the lab notebook
rendered compactly, the role's inputs, and the JSON schema to answer in). Agents are stateless, so
everything a role needs travels in these two messages on every turn. The rules restate the method's
(DESIGN.md §2, METHOD-NOTES.md): actions in a schema, not prose; bold moves; distinct axes; reviews
with reasons; recalled failures not repeated without saying what is different.

When a task has editable files, the experimenter also sees the code it may change
(:func:`render_code`): each file at the champion's code state with line numbers, whole when it fits
``PromptSettings.code_budget_chars`` and otherwise as an outline plus the region in focus; the
champion's change from the original files; and how to write an edit (a unified diff or SEARCH/REPLACE
blocks, an increment against the files shown). The critic sees the code increment it reviews.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from autosci_graph.scientists._answers import OrganizeAnswer, ProposeAnswer, ReviewAnswer, describe_knob, step_examples
from autosci_graph.scientists.base import LabView, RecalledMemory
from autosci_graph.state import Proposal, Team
from autosci_graph.scientists.code_prompt import render_code, render_increment


@dataclass(frozen=True)
class PromptSettings:
    """How much of the notebook goes into a prompt."""

    #: Most recent experiment-log entries shown.
    log_window: int = 12
    #: Most recent dead ends shown.
    dead_end_window: int = 12
    #: Recalled failures shown (the most similar first).
    recall_window: int = 8
    #: Characters of numbered code (about 4 per token) the experimenter sees. Files that fit go in
    #: whole; the rest get an outline plus their region in focus. Also caps a reviewed increment.
    code_budget_chars: int = 12_000
    #: Characters of the champion's full code change shown; longer changes are cut with a note.
    champion_diff_chars: int = 4_000
    #: Characters of the task's untried code ideas (their diffs) an experimenter sees, its own
    #: team's ideas first; ideas past the budget are listed by name only.
    idea_diff_chars: int = 6_000

    def __post_init__(self) -> None:
        for name in ("log_window", "dead_end_window", "recall_window", "code_budget_chars", "champion_diff_chars",
                     "idea_diff_chars"):
            if getattr(self, name) < 0:
                raise ValueError(f"PromptSettings.{name} must be >= 0, got {getattr(self, name)}")


_PREAMBLE = (
    "You are {agent}, {role} in a self-organizing research lab (the AutoScientists method). "
    "You are stateless: everything you know is in the lab notebook below. "
    "Answer with ONE JSON object matching the schema given, and nothing else: no prose, no plans, "
    "no description of what you would do. Your answer is executed as written."
)

_ORGANIZER_RULES = """Rules for hypotheses:
- Each is falsifiable: a claim, a measurable prediction, and the result that would refute it (not just "tune X").
- Rank directions by measured effect sizes; gains below 2 x noise sigma are not evidence.
- Each hypothesis owns at least one never-tested axis while any is left.
- Avoid families listed as dead ends. Post at least {n_teams} hypotheses; rank them best first."""

_EXPERIMENTER_RULES = """Rules for proposals:
- Give {n} proposals, each a concrete change to the champion's configuration, on DIFFERENT axes.
- Use only the knobs listed, within their bounds. Tag each with its axis (the main knob moved) and
  direction (increase/decrease for numeric knobs, set for categorical, code for a diff).
- At least one proposal is a bold move (e.g. doubling or halving a knob, >=10% change in model size); set bold=true on it.
- Do not repeat a recalled failure or a dead end. If a change is near one on purpose, fill
  what_is_different with what is different this time.
- Serve the team's hypothesis: each proposal should support or refute it."""

_CRITIC_RULES = """Rules for reviews:
- Approve only if the change is tagged, consistent with its tags, not a repeat of a recalled failure or
  dead end (unless what_is_different is convincing), and likely informative given the noise floor.
- Reject an axis+direction tried 3 or more times recently without a keep.
- For a code change, read its CODE INCREMENT: approve only if the edit does what the rationale says.
- Always give a specific reason citing the evidence (effect sizes, dead ends, recalled failures, noise). Never a bare "looks good"."""


def schema_text(model: type[BaseModel]) -> str:
    """The answer's JSON schema, compact, as shown to the model."""
    return json.dumps(model.model_json_schema(), separators=(",", ":"))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render_view(view: LabView, settings: PromptSettings = PromptSettings()) -> str:
    """The shared experimental state, compactly, as one block of text."""
    task, champ, know = view.task, view.champion, view.knowledge
    m = task.metric
    lines = [f"TASK: {task.name}" + (f" - {task.description}" if task.description else "")]
    target = f", target {_fmt(m.target)}" if m.target is not None else ""
    lines.append(f"METRIC: {m.name} ({m.direction}{target})")
    lines.append("KNOBS (name: range, default; champion value; a step each way):")
    for name, knob in task.knobs.items():
        value = champ.config.get(name, knob.default)
        # Example steps: small models otherwise copy the champion's value and call it a change.
        steps = ", ".join(f"{_fmt(v)} {d}" for v, d in step_examples(knob, value))
        lines.append(f"  {describe_knob(name, knob)}; champion {_fmt(value)}" + (f"; step: {steps}" if steps else ""))
    if task.editable:
        lines.append(f"EDITABLE FILES (a code change goes in diff, with direction code): {', '.join(task.editable)}")
    if view.ideas:
        untried = {i.name for i in view.untried_ideas()}
        lines.append("CODE IDEAS shipped with the task (each is the axis code:<axis>; ideas on one axis are alternatives):")
        for idea in view.ideas:
            lines.append(f"  {idea.axis_tag} {idea.name}: {idea.description}" + (" [tried]" if idea.name not in untried else ""))
    changed = {k: v for k, v in champ.config.items() if k in task.knobs and v != task.knobs[k].default}
    measured = _fmt(champ.metric) if champ.metric is not None else "not measured yet"
    lines.append(
        f"CHAMPION: {m.name}={measured} seeds={champ.seeds} from {champ.experiment_id or 'default config'}"
        f" ({champ.description}); changed from default: {changed or 'nothing'}"
        + ("; includes a code diff" if champ.diff else "")
    )
    if know.noise_sigma is not None:
        lines.append(
            f"NOISE: sigma={_fmt(know.noise_sigma)} from {know.noise_samples} repeat runs; "
            f"a gain below {_fmt(2 * know.noise_sigma)} (2 sigma) needs confirmation on another seed"
        )
    else:
        lines.append("NOISE: not yet estimated")
    if know.effects:
        lines.append("AXIS EFFECTS (gain > 0 is better):")
        for eff in sorted(know.effects.values(), key=lambda x: -(x.mean_gain or float("-inf"))):
            by_dir = ", ".join(f"{d} {_fmt(g)}" for d, g in eff.by_direction.items())
            lines.append(
                f"  {eff.axis}: tried {eff.tried}, keeps {eff.keeps}, discards {eff.discards}, crashes {eff.crashes}, "
                f"mean gain {_fmt(eff.mean_gain) if eff.mean_gain is not None else 'n/a'}"
                + (f" ({by_dir})" if by_dir else "")
            )
    lines.append(f"UNTESTED AXES: {', '.join(know.untested_axes) or 'none'}")
    if view.teams:
        lines.append("TEAMS:")
        for t in view.teams:
            lines.append("  " + _team_line(t))
    if view.dead_ends:
        lines.append("DEAD ENDS (do not repeat):")
        for d in view.dead_ends[-settings.dead_end_window :]:
            delta = f" delta {_fmt(d.delta)}" if d.delta is not None else ""
            lines.append(f"  {d.axis} {d.direction} value={_fmt(d.value)}{delta} [{d.experiment_id}] {d.reason}".rstrip())
    if view.experiments:
        shown = min(settings.log_window, len(view.experiments))
        lines.append(f"RECENT EXPERIMENTS (last {shown} of {len(view.experiments)}):")
        for e in view.experiments[-settings.log_window :]:
            r, p = e.result, e.proposal
            metric = _fmt(r.metric) if r.metric is not None else r.status
            gain = f" gain {_fmt(e.gain)}" if e.gain is not None else ""
            kind = f" ({e.kind})" if e.kind != "explore" else ""
            lines.append(
                f"  #{e.index}{kind} {p.team} {p.axis} {p.direction} {r.change.knobs or ''}"
                f"{' +diff' if r.change.diff else ''} seed {r.seed} -> {metric}{gain} {e.outcome}"
            )
    if view.in_flight:
        lines.append("IN FLIGHT (queued or running, do not duplicate):")
        for p in view.in_flight:
            lines.append(f"  {p.team} {p.axis} {p.direction} {p.change.knobs}")
    if view.experiments_left is not None:
        lines.append(f"EXPERIMENTS LEFT: {view.experiments_left}")
    return "\n".join(lines)


def render_ideas(view: LabView, team: Team, budget_chars: int) -> str:
    """The untried code ideas as diffs a proposal can copy (the team's own axes first), within a
    character budget; the rest by name. Empty when the task ships none."""
    untried = view.untried_ideas()
    if not untried:
        return ""
    own = set(team.hypothesis.axes)
    untried.sort(key=lambda i: (i.axis_tag not in own, i.axis_tag, i.name))
    parts, left, skipped = [], budget_chars, []
    for idea in untried:
        block = f"--- idea {idea.name} ({idea.axis_tag}): {idea.description}\n{idea.diff.rstrip()}"
        if len(block) > left:
            skipped.append(idea.name)
            continue
        parts.append(block)
        left -= len(block)
    head = ("UNTRIED CODE IDEAS (diffs against the task's original files; to propose one, put its diff in diff "
            "with its axis and direction code; the champion's accepted changes stay):")
    tail = f"\n(not shown, over the budget: {', '.join(skipped)})" if skipped else ""
    return head + "\n" + "\n".join(parts) + tail


def _team_line(t: Team) -> str:
    h = t.hypothesis
    return (
        f"{t.team_id} [{t.status}] axes {h.axes}: {h.statement} | prediction: {h.prediction} | "
        f"falsified if: {h.falsification} | support {t.support}, refute {t.refute}"
    )


def render_recalled(recalled: list[RecalledMemory], settings: PromptSettings = PromptSettings()) -> str:
    """The recalled similar failures, one line each, most similar first."""
    if not recalled:
        return "SIMILAR PAST FAILURES (from memory): none recalled"
    lines = ["SIMILAR PAST FAILURES (from memory; do not repeat without saying what is different):"]
    for r in sorted(recalled, key=lambda r: -r.score)[: settings.recall_window]:
        tags = " ".join(x for x in (r.axis, r.direction) if x)
        delta = f" delta {_fmt(r.delta)}" if r.delta is not None else ""
        status = r.outcome or r.status or "failed"
        knobs = f" {r.knobs}" if r.knobs else ""
        lines.append(f"  [{r.experiment_id}] {tags}{knobs} {status}{delta}: {r.text}")
    return "\n".join(lines)


def _render_proposal(p: Proposal) -> str:
    return json.dumps(
        {
            "author": p.author, "team": p.team, "axis": p.axis, "direction": p.direction,
            "knobs": p.change.knobs, "code_increment": "shown below" if p.change.diff else None, "rationale": p.rationale,
            "prediction": p.prediction, "bold": p.bold, "what_is_different": p.what_is_different,
        },
        default=str,
    )


def _answer_block(schema: type[BaseModel]) -> str:
    return f"Answer with one JSON object matching this JSON schema:\n{schema_text(schema)}"


def organize_messages(
    view: LabView, *, n_teams: int, agent: str, settings: PromptSettings = PromptSettings()
) -> list[BaseMessage]:
    system = _PREAMBLE.format(agent=agent, role="an analyst organizing the lab's teams") + "\n\n"
    system += _ORGANIZER_RULES.format(n_teams=n_teams)
    human = f"{render_view(view, settings)}\n\nPost hypotheses for {n_teams} teams.\n\n{_answer_block(OrganizeAnswer)}"
    return [SystemMessage(system), HumanMessage(human)]


def propose_messages(
    view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int,
    settings: PromptSettings = PromptSettings(),
) -> list[BaseMessage]:
    system = _PREAMBLE.format(agent=author, role=f"an experimenter on team {team.team_id}") + "\n\n"
    system += _EXPERIMENTER_RULES.format(n=n)
    feedback = ""
    if view.feedback:
        reviews = "\n".join(
            f"  {r.proposal_id} {'approved' if r.approve else 'REJECTED'} by {r.reviewer}: {r.reason}" for r in view.feedback
        )
        feedback = f"\n\nREVIEWS OF YOUR EARLIER DRAFTS THIS TURN (address them; do not resubmit a rejected change):\n{reviews}"
    if view.siblings_drafting:
        feedback += (f"\n\n{view.siblings_drafting} other experimenter(s) of your team are drafting from this same state "
                     "right now and will take the most obvious next moves: propose different changes (other knobs, "
                     "other values, other ideas), not the first ones that come to mind.")
    sections = [render_view(view, settings),
                render_code(view, code_budget_chars=settings.code_budget_chars, champion_diff_chars=settings.champion_diff_chars),
                render_ideas(view, team, settings.idea_diff_chars), f"YOUR TEAM: {_team_line(team)}",
                render_recalled(recalled, settings) + feedback, f"Propose {n} experiments.", _answer_block(ProposeAnswer)]
    human = "\n\n".join(part for part in sections if part)
    return [SystemMessage(system), HumanMessage(human)]


def critique_messages(
    view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory],
    settings: PromptSettings = PromptSettings(),
) -> list[BaseMessage]:
    system = _PREAMBLE.format(agent=reviewer, role="an analyst reviewing a proposal before it costs compute")
    system += "\n\n" + _CRITIC_RULES
    sections = [render_view(view, settings), f"PROPOSAL TO REVIEW: {_render_proposal(proposal)}",
                render_increment(view, proposal, code_budget_chars=settings.code_budget_chars), render_recalled(recalled, settings), _answer_block(ReviewAnswer)]
    human = "\n\n".join(part for part in sections if part)
    return [SystemMessage(system), HumanMessage(human)]


def repair_message(errors: list[str]) -> HumanMessage:
    """The follow-up sent after an invalid answer."""
    listed = "\n".join(f"- {e}" for e in errors)
    return HumanMessage(
        f"Your answer was rejected:\n{listed}\nReply again with the corrected, complete JSON object only."
    )
