"""The terminal view of a running lab: teams, running experiments, champion, budget left."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from autosci_graph.graphs.context import LabSettings
from autosci_graph.graphs.state import Notebook
from autosci_graph.reports.summary import TIMELINE_EVENTS, timeline_text
from autosci_graph.task import ResearchTask


def _fmt(v: Any) -> str:
    return f"{v:.5g}" if isinstance(v, float) else str(v)


def render(state: dict[str, Any], task: ResearchTask, settings: LabSettings) -> Group:
    nb = Notebook(state, task)  # type: ignore[arg-type]
    champ = nb.champion
    default = task.default_config()
    changed = {k: v for k, v in champ.config.items() if default.get(k) != v}
    head = Table.grid(padding=(0, 2))
    head.add_row(f"[b]{task.name}[/b] · run {state.get('run_id', '?')}",
                 f"champion {task.metric.name} = [b green]{_fmt(champ.metric) if champ.metric is not None else 'measuring baseline'}[/]",
                 f"changes: {', '.join(f'{k}={_fmt(v)}' for k, v in changed.items()) or 'none'}")
    used = len(state.get("submitted", []))
    budget = f"experiments {used}/{settings.max_experiments or '∞'}"
    if settings.deadline:
        budget += f" · {max(0, settings.deadline - time.time()) / 60:.1f} min left"
    usage = state.get("usage") or {}
    if usage.get("calls"):
        budget += f" · tokens {int(usage.get('input_tokens', 0)) + int(usage.get('output_tokens', 0))}"
    head.add_row(budget, f"kept {sum(1 for e in nb.log if e.outcome == 'keep' and e.kind != 'baseline')}",
                 f"[yellow]{state.get('stop_reason') or ''}[/]")

    teams = Table(title="teams", expand=True, title_justify="left")
    for col in ("team", "hypothesis", "axes", "support", "refute"):
        teams.add_column(col, overflow="fold")
    for t in nb.active_teams:
        teams.add_row(t.team_id, t.hypothesis.statement, ", ".join(t.hypothesis.axes), str(t.support), str(t.refute))

    running = Table(title="running", expand=True, title_justify="left")
    for col in ("experiment", "team", "change", "seed", "for"):
        running.add_column(col, overflow="fold")
    now = time.time()
    for s in nb.in_flight:
        running.add_row(s.experiment_id, s.proposal.team or s.kind, s.proposal.rationale or s.kind, str(s.seed), f"{now - s.submitted_at:.0f}s")

    recent = Table(title="latest results", expand=True, title_justify="left")
    for col in ("#", "team", "change", task.metric.name, "outcome"):
        recent.add_column(col, overflow="fold")
    for e in nb.log[-6:]:
        recent.add_row(str(e.index), e.proposal.team or "-", (e.proposal.rationale or e.kind)[:60], _fmt(e.result.metric), e.outcome)
    return Group(Panel(head), teams, running, recent)


class LiveView:
    """A rich Live panel on a terminal; plain progress lines elsewhere (CI logs, pipes)."""

    def __init__(self, task: ResearchTask, settings: LabSettings, console: Console | None = None) -> None:
        self.task, self.settings = task, settings
        self.console = console or Console(stderr=True)
        self.interactive = self.console.is_terminal
        self._live: Live | None = None

    def __enter__(self) -> "LiveView":
        if self.interactive:
            self._live = Live(console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop redrawing while something else owns the terminal (an approval prompt)."""
        if self._live is None:
            yield
            return
        self._live.stop()
        try:
            yield
        finally:
            self._live.start()

    def __call__(self, mode: str, chunk: Any) -> None:
        if mode == "values" and self._live is not None:
            self._live.update(render(chunk, self.task, self.settings))
        elif mode == "custom" and not self.interactive:
            line = _event_line(chunk)
            if line is not None:
                self.console.print(line, highlight=False, markup=False)


def _event_line(ev: dict[str, Any]) -> str | None:
    """The progress line for an event; ``None`` for an event with nothing to say."""
    kind = ev.get("type", "event")
    if kind == "experiment_finished":
        return f"[autosci] finished {ev.get('experiment_id')}: {ev.get('status')} metric={_fmt(ev.get('metric'))}"
    if kind == "promotion":
        return f"[autosci] new champion from {ev.get('team')}: {_fmt(ev.get('metric'))} ({ev.get('reason')})"
    if kind in ("team_formed", "team_falsified"):
        return f"[autosci] {kind.replace('_', ' ')} {ev.get('team')}: {ev.get('hypothesis')}"
    text = timeline_text(ev) if kind in TIMELINE_EVENTS else str(ev.get("reason") or ev.get("metric") or "")
    return f"[autosci] {kind.replace('_', ' ')}: {text}" if text.strip() else None


def is_tty() -> bool:
    return sys.stderr.isatty()
