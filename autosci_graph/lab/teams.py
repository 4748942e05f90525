"""Team life cycle: formation by vote, falsification, regroup triggers. Plain code, no agent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from autosci_graph.agent_records import HypothesisDraft, OrganizeReply
from autosci_graph.lab.critique import refutes
from autosci_graph.state import ExperimentEntry, Hypothesis, Team


@dataclass(frozen=True)
class TeamRules:
    """Thresholds of the team life cycle. The lab builds one from its settings
    (``LabSettings.team_rules``), which document each field."""

    falsify_rotations: int
    falsify_refutes: int
    team_min_life: int
    regroup_cooldown: int
    regroup_rotations_without_keep: int
    regroup_discards: int
    regroup_axes: int
    #: A direction with this many discards and no keep is a dead end (``CritiqueRules``'s bar).
    dead_end_discards: int
    analysts_per_team: int
    experimenters_per_team: int


def is_falsified(team: Team, rules: TeamRules) -> bool:
    """Falsified: past its minimum life, many rotations without a supporting keep and repeated
    refuting discards."""
    return (team.experiments >= rules.team_min_life and team.rotations_since_support >= rules.falsify_rotations
            and team.refute >= rules.falsify_refutes)


def can_dissolve(team: Team, rules: TeamRules) -> bool:
    """A regroup dissolves only teams that have lived their minimum life."""
    return team.experiments >= rules.team_min_life


def regroup_reason(log: list[ExperimentEntry], since: int, n_teams: int, rules: TeamRules) -> str | None:
    """Why the lab should re-form its teams now, judging only explorations after index ``since``
    (the last regroup or formation), and never within ``regroup_cooldown`` explorations of it."""
    recent = [e for e in log if e.index >= since and e.kind == "explore"]
    if not recent or len(recent) < rules.regroup_cooldown:
        return None
    window = rules.regroup_rotations_without_keep * max(1, n_teams)
    # A keep reached by confirmation is logged on the confirmation run, not on the exploration.
    if len(recent) >= window and not any(
        e.outcome == "keep" and e.kind in ("explore", "confirm") and e.index >= recent[-window].index for e in log
    ):
        return f"no keep in the last {window} explorations ({rules.regroup_rotations_without_keep} rotations)"
    discards = [e for e in recent if e.outcome in ("discard", "crash")][-rules.regroup_discards :]
    if len(discards) >= rules.regroup_discards:
        axes = {e.proposal.axis for e in discards}
        if len(axes) <= rules.regroup_axes:
            return f"the last {len(discards)} discards all fall within {len(axes)} axes ({', '.join(sorted(a or '?' for a in axes))})"
    return None


def exhausted_axes(log: list[ExperimentEntry], rules: TeamRules) -> set[str]:
    """Axes whose every tried direction is a dead end (discards and no keep)."""
    per: dict[str, Counter[str]] = {}
    keeps: set[str] = set()
    for e in log:
        if e.kind not in ("explore", "confirm") or not e.proposal.axis:
            continue
        if e.outcome == "keep":
            keeps.add(e.proposal.axis)
        elif e.outcome in ("discard", "crash") and e.kind == "explore":
            per.setdefault(e.proposal.axis, Counter())[e.proposal.direction or "set"] += 1
    return {
        axis for axis, c in per.items()
        if axis not in keeps and c and all(n >= rules.dead_end_discards for n in c.values()) and len(c) >= 1
        and sum(c.values()) >= 2 * rules.dead_end_discards
    }


def choose_drafts(
    reply: OrganizeReply, n: int, untested: list[str], exhausted: set[str], taken_axes: set[str]
) -> list[HypothesisDraft]:
    """The ``n`` best-voted drafts; each owns a never-tested axis while any is left, none is built
    only on exhausted axes, and no two new teams share a primary axis."""
    votes = Counter(reply.votes)
    order = sorted(range(len(reply.hypotheses)), key=lambda i: (-votes[i], -reply.hypotheses[i].promise, i))
    chosen: list[HypothesisDraft] = []
    picked: set[int] = set()  # by index: a chosen draft may be a copy with exhausted axes stripped
    free_untested = [a for a in untested if a not in taken_axes]
    for i in order:
        d = reply.hypotheses[i]
        live = [a for a in d.axes if a not in exhausted]
        if not live:
            continue
        if free_untested and not any(a in free_untested for a in d.axes):
            continue
        if any(c.axes[0] == live[0] for c in chosen) or live[0] in taken_axes:
            continue
        chosen.append(d.model_copy(update={"axes": live}))
        picked.add(i)
        free_untested = [a for a in free_untested if a not in d.axes]
        if len(chosen) == n:
            break
    # Too strict for what was posted: fill with the best remaining drafts rather than run short,
    # led by an axis no active or new team owns (two teams on one axis only repeat each other).
    for i in order:
        if len(chosen) == n:
            break
        d = reply.hypotheses[i]
        owned = taken_axes | {c.axes[0] for c in chosen}
        live = [a for a in d.axes if a not in exhausted]
        free = [a for a in live if a not in owned]
        if i not in picked and free:
            chosen.append(d.model_copy(update={"axes": free + [a for a in live if a not in free]}))
            picked.add(i)
    return chosen


def new_team(draft: HypothesisDraft, team_id: str, members: list[str], at_experiment: int) -> Team:
    return Team(
        team_id=team_id,
        hypothesis=Hypothesis(statement=draft.statement, prediction=draft.prediction, falsification=draft.falsification, axes=draft.axes,
                              directions={a: d for a, d in draft.directions.items() if a in draft.axes}),
        members=members,
        formed_at_experiment=at_experiment,
    )


def members_for(slot: int, rules: TeamRules) -> list[str]:
    """The roster of team ``slot``: its analysts, then its experimenters."""
    a = [f"analyst-{slot * rules.analysts_per_team + i + 1}" for i in range(rules.analysts_per_team)]
    e = [f"experimenter-{slot * rules.experimenters_per_team + i + 1}" for i in range(rules.experimenters_per_team)]
    return a + e


def team_experimenters(team: Team) -> list[str]:
    """The members who turn the team's hypothesis into runs, in roster order."""
    return [m for m in team.members if m.startswith("experimenter")]


def branch_holders(teams: Sequence[Team], busy: set[str], rotation: int) -> list[tuple[Team, str]]:
    """Who may start a branch: one free experimenter per team in ``teams``' order, then a
    second per team, and so on. Within a team the experimenter whose turn it is comes first
    (turns pass round the roster with the rotation). A team without experimenters is one."""
    queues: list[tuple[Team, list[str]]] = []
    for t in teams:
        holders = team_experimenters(t) or [t.team_id]
        k = rotation % len(holders)
        queues.append((t, [h for h in holders[k:] + holders[:k] if h not in busy]))
    depth = max((len(q) for _, q in queues), default=0)
    return [(t, q[level]) for level in range(depth) for t, q in queues if level < len(q)]


def rank_key(team: Team) -> tuple[int, int, int]:
    """Best-ranked first: most net support, then the longest streak since support stays behind."""
    return (-(team.support - team.refute), team.rotations_since_support, team.formed_at_experiment)


def update_counters(team: Team, entry: ExperimentEntry) -> Team:
    """A team's counters after one of its experiments is decided. Only results on the
    hypothesis's own axes support or refute it; every result is a rotation."""
    on_hypothesis = entry.proposal.axis in team.hypothesis.axes
    supported = entry.outcome == "keep" and on_hypothesis
    refuted = refutes(entry) and on_hypothesis
    return team.model_copy(update={
        "support": team.support + supported,
        "refute": team.refute + refuted,
        "rotations": team.rotations + 1,
        "rotations_since_support": 0 if supported else team.rotations_since_support + 1,
        "experiments": team.experiments + 1,
    })
