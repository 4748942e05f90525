"""What a run did, in numbers: the facts every output format (TSV, plot, Markdown, HTML) shows."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosci_graph.graphs.state import LabState, Notebook
from autosci_graph.lab.knowledge import noise_estimate
from autosci_graph.state import Champion, DeadEnd, ExperimentEntry, Team, Usage
from autosci_graph.task import ResearchTask


@dataclass(frozen=True)
class RunSummary:
    task: ResearchTask
    run_id: str
    entries: list[ExperimentEntry]
    champion: Champion
    baseline_metric: float | None
    teams: list[Team]
    dead_ends: list[DeadEnd]
    events: list[dict[str, Any]]
    usage: Usage
    stop_reason: str | None
    noise_sigma: float | None
    noise_dof: int
    in_flight: int
    final_eval: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def keeps(self) -> int:
        return sum(1 for e in self.entries if e.outcome == "keep" and e.kind in ("explore", "confirm"))

    @property
    def improvement(self) -> float | None:
        if self.baseline_metric is None or self.champion.metric is None:
            return None
        return self.task.metric.gain(self.champion.metric, self.baseline_metric)

    def containment(self) -> list[str]:
        """How the runs were contained (filled from the run directory by :func:`with_containment`)."""
        return list(self.extra.get("containment", []))

    def count(self, outcome: str) -> int:
        return sum(1 for e in self.entries if e.outcome == outcome)

    def device_seconds(self) -> float:
        return sum(e.result.duration_s for e in self.entries)

    def frontier(self) -> list[tuple[int, float]]:
        """(experiment index, champion metric) at the baseline and at each experiment that changed
        the champion (a keep, or a repeat of the champion that moved its mean)."""
        points: list[tuple[int, float]] = []
        if self.baseline_metric is not None:
            first = max((e.index for e in self.entries if e.kind == "baseline"), default=0)
            points.append((first, self.baseline_metric))
        promotions = iter(ev["metric"] for ev in self.events if ev.get("type") == "promotion" and ev.get("metric") is not None)
        remeasures = iter(ev["metric"] for ev in self.events if ev.get("type") == "remeasure" and ev.get("metric") is not None)
        for e in self.entries:
            source = None
            if e.outcome == "keep" and e.kind in ("explore", "confirm"):
                source = promotions
            elif e.kind == "noise" and e.outcome == "remeasure":
                source = remeasures
            value = next(source, None) if source is not None else None
            if value is not None:
                points.append((e.index, float(value)))
        return points


#: Events a report's timeline shows.
TIMELINE_EVENTS = ("team_formed", "team_falsified", "teams_merged", "regroup", "promotion", "rebased", "stopping")


def timeline_text(ev: dict[str, Any]) -> str:
    """What a timeline event says, in words."""
    if ev.get("type") == "teams_merged":
        return f"absorbed {ev['absorbed']}" if ev.get("absorbed") else ""
    if ev.get("type") == "rebased":
        return f"{ev.get('experiment_id')} re-run on the new champion as {ev.get('new_experiment_id')}"
    return str(ev.get("hypothesis") or ev.get("reason") or "")


def summarize(state: LabState, task: ResearchTask) -> RunSummary:
    nb = Notebook(state, task)
    entries = nb.log
    baseline = [e.result.metric for e in entries if e.kind == "baseline" and e.result.ok and e.result.metric is not None]
    sigma, dof = noise_estimate(task, entries, upper=False)
    return RunSummary(
        task=task, run_id=state.get("run_id", "run"), entries=entries, champion=nb.champion,
        baseline_metric=sum(baseline) / len(baseline) if baseline else None,  # type: ignore[arg-type]
        teams=nb.teams, dead_ends=nb.dead_ends, events=list(state.get("events", [])), usage=nb.usage,
        stop_reason=state.get("stop_reason"), noise_sigma=sigma, noise_dof=dof, in_flight=len(nb.in_flight),
        final_eval=state.get("final_eval"),  # type: ignore[arg-type]
    )


def containment_lines(run_dir: Path) -> list[str]:
    """How a run directory's experiments were contained, from their ``result.json`` provenance:
    a warning when any ran without the sandbox or with the network, else one line saying they
    were sandboxed. (The notebook keeps no provenance, so it is read from the experiments.)"""
    from autosci_graph.state import RunResult

    provs = []
    for path in sorted(Path(run_dir).glob("experiments/*/result.json")):
        try:
            prov = RunResult.model_validate_json(path.read_bytes()).provenance
        except (OSError, ValueError):
            continue
        if prov is not None:
            provs.append(prov)
    lines = []
    unsandboxed = sum(1 for p in provs if p.sandbox == "none")
    if unsandboxed:
        lines.append(f"⚠ SANDBOX OFF: {unsandboxed} of {len(provs)} runs ran unsandboxed (--sandbox none); "
                     "they could read the user's files, write outside their workspace and use the network")
    networked = sum(1 for p in provs if p.sandbox == "bwrap" and p.network)
    if networked:
        lines.append(f"⚠ NETWORK ON: {networked} of {len(provs)} runs had network access (task.toml network = true)")
    if not lines and provs and all(p.sandbox == "bwrap" for p in provs):
        lines.append("sandbox: every run in bubblewrap (read-only system, own workspace, data read-only, no network)")
    return lines


def with_containment(s: RunSummary, run_dir: Path) -> RunSummary:
    """``s`` with the containment of the run directory's experiments (see :func:`containment_lines`)."""
    return dataclasses.replace(s, extra={**s.extra, "containment": containment_lines(run_dir)})


def fmt(v: float | None, digits: int = 5) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}g}"
