"""Write ``results.tsv``, ``progress.png`` and ``report.md`` into a run directory."""

from __future__ import annotations

import csv
import difflib
import io
import json
from pathlib import Path

from autosci_graph.state import Change
from autosci_graph.reports.summary import TIMELINE_EVENTS, RunSummary, fmt, timeline_text, with_containment

#: autoresearch's columns (``commit`` is a content hash of what ran: the editable files at the
#: experiment's code state and its knob configuration; ``metric`` is named after the task's
#: metric), then ours.
TSV_COLUMNS = ["commit", "metric", "memory_gb", "status", "description", "experiment", "team", "hypothesis",
               "kind", "seed", "gain", "outcome", "run_status", "duration_s"]


def _status(outcome: str) -> str:
    # autoresearch's status column knows keep / discard / crash only.
    return {"keep": "keep", "crash": "crash"}.get(outcome, "discard")


def _commit(s: RunSummary, change: Change) -> str:
    from autosci_graph.tools.codestate import state_hash

    try:
        return state_hash(s.task, change)
    except (OSError, ValueError):  # the task folder moved or its files changed since the run
        return "-"


def results_tsv(s: RunSummary) -> str:
    hyp = {t.team_id: t.hypothesis.statement for t in s.teams}
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    header = list(TSV_COLUMNS)
    header[1] = s.task.metric.name
    w.writerow(header)
    for e in s.entries:
        mem = e.result.metrics.get("peak_memory_gb", e.result.metrics.get("memory_gb", 0.0))
        w.writerow([
            _commit(s, e.result.change), fmt(e.result.metric, 6), f"{mem:.1f}",
            _status(e.outcome), (e.proposal.rationale or e.result.change.description or "").replace("\t", " ").replace("\n", " "),
            e.result.experiment_id, e.proposal.team or "-", hyp.get(e.proposal.team, "").replace("\t", " "), e.kind, e.result.seed,
            fmt(e.gain, 4), e.outcome, e.result.status, f"{e.result.duration_s:.1f}",
        ])
    return buf.getvalue()


def progress_png(s: RunSummary, path: Path) -> None:
    """Metric per experiment, the champion frontier, one colour per team."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    teams = sorted({e.proposal.team for e in s.entries if e.proposal.team})
    palette = [plt.get_cmap("tab10")(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]  # no grey: grey is housekeeping
    colours = {t: palette[i % len(palette)] for i, t in enumerate(teams)}
    ok = [e for e in s.entries if e.result.ok and e.result.metric is not None]
    for label, group, colour in [("baseline / housekeeping", [e for e in ok if not e.proposal.team], "0.45")] + [
        (f"team {t}", [e for e in ok if e.proposal.team == t], colours[t]) for t in teams
    ]:
        if group:
            ax.scatter([e.index for e in group], [float(e.result.metric or 0.0) for e in group], s=28, color=colour, label=label,
                       edgecolors=["black" if e.outcome == "keep" and e.kind in ("explore", "confirm") else "none" for e in group])
    frontier = s.frontier()
    if frontier:
        xs, ys = zip(*frontier)
        last = max((e.index for e in s.entries), default=xs[-1])
        ax.step(list(xs) + [last], list(ys) + [ys[-1]], where="post", color="crimson", lw=2, label="champion")
    failed = [e for e in s.entries if not e.result.ok]
    if failed and ok:
        values = [float(e.result.metric or 0.0) for e in ok]
        worst = max(values) if s.task.metric.minimize else min(values)
        ax.scatter([e.index for e in failed], [worst] * len(failed), marker="x", color="black", label="failed run")
    ax.set_xlabel("experiment")
    ax.set_ylabel(f"{s.task.metric.name} ({'lower' if s.task.metric.minimize else 'higher'} is better)")
    ax.set_title(f"{s.task.name} · run {s.run_id} · {len(s.entries)} experiments, {s.keeps} kept")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def champion_diff(s: RunSummary) -> str:
    """The champion's change against the task's defaults, as a unified diff of settings and code."""
    default = s.task.default_config()
    a = [f"{k} = {json.dumps(default[k])}\n" for k in sorted(default)]
    b = [f"{k} = {json.dumps(s.champion.config.get(k, default[k]))}\n" for k in sorted(default)]
    text = "".join(difflib.unified_diff(a, b, "default", "champion"))
    if s.champion.diff:
        text += "\n" + s.champion.diff
    return text or "(the champion is the default configuration)\n"


def report_md(s: RunSummary) -> str:
    m = s.task.metric
    lines = [f"# {s.task.name}: run {s.run_id}", ""]
    lines += [f"- stop reason: {s.stop_reason or 'still running'}",
              f"- experiments: {len(s.entries)} ({s.keeps} kept, {s.count('discard')} discarded, {s.count('crash')} crashed, "
              f"{sum(1 for e in s.entries if e.kind == 'confirm')} confirmations, {sum(1 for e in s.entries if e.kind == 'noise')} champion repeats)",
              f"- baseline {m.name}: {fmt(s.baseline_metric)} → champion {fmt(s.champion.metric)} "
              f"(gain {fmt(s.improvement, 4)}, {m.direction})",
              f"- champion: {s.champion.experiment_id or 'default configuration'} over seeds {s.champion.seeds}",
              f"- noise σ (run-to-run, {s.noise_dof} dof): {fmt(s.noise_sigma, 3)}",
              f"- device-seconds: {s.device_seconds():.0f}",
              f"- LLM usage: {s.usage.calls} calls, {s.usage.input_tokens + s.usage.output_tokens} tokens, ${s.usage.cost_usd:.4f}"]
    lines += [f"- {line}" for line in s.containment()]
    if s.final_eval:
        lines.append(f"- held-out final evaluation of the champion: {s.final_eval.get('metric_name', '')} = "
                     f"{fmt(s.final_eval.get('metric'))} (validation {fmt(s.champion.metric)})")
    lines += ["", "![progress](progress.png)", "", "## Champion", "", "```diff", champion_diff(s).rstrip(), "```", "", "## Teams", ""]
    lines += ["| team | status | hypothesis | axes | support | refute | experiments |", "|---|---|---|---|---|---|---|"]
    for t in s.teams:
        lines.append(f"| {t.team_id} | {t.status} | {t.hypothesis.statement} | {', '.join(t.hypothesis.axes)} | {t.support} | {t.refute} | {t.experiments} |")
    lines += ["", "## Experiments", "", f"| # | id | team | axis | change | {m.name} | gain | outcome |", "|---|---|---|---|---|---|---|---|"]
    for e in s.entries:
        lines.append(f"| {e.index} | {e.result.experiment_id} | {e.proposal.team or '-'} | {e.proposal.axis or '-'} | "
                     f"{(e.proposal.rationale or e.kind)[:70]} | {fmt(e.result.metric)} | {fmt(e.gain, 3)} | {e.outcome} ({e.result.status}) |")
    if s.dead_ends:
        lines += ["", "## Dead ends", "", "| experiment | family | value | delta | reason |", "|---|---|---|---|---|"]
        for d in s.dead_ends:
            lines.append(f"| {d.experiment_id} | {d.family} | {d.value} | {fmt(d.delta, 3)} | {d.reason[:90]} |")
    notable = [ev for ev in s.events if ev.get("type") in TIMELINE_EVENTS]
    if notable:
        lines += ["", "## Timeline", ""]
        for ev in notable:
            what = timeline_text(ev)
            lines.append(f"- {ev['type']} {ev.get('team', '')} {what}".rstrip())
    return "\n".join(lines) + "\n"


def write_report(s: RunSummary, run_dir: Path) -> dict[str, Path]:
    """Write the three outputs; returns their paths."""
    run_dir.mkdir(parents=True, exist_ok=True)
    s = with_containment(s, run_dir)
    paths = {"results": run_dir / "results.tsv", "plot": run_dir / "progress.png", "report": run_dir / "report.md"}
    paths["results"].write_text(results_tsv(s), encoding="utf-8")
    progress_png(s, paths["plot"])
    paths["report"].write_text(report_md(s), encoding="utf-8")
    return paths
