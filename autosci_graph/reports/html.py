"""Write ``report.html``: one self-contained page of a run that opens offline and can be shared.

Everything is inline (CSS, a few lines of vanilla JS, the progress plot as a base64 PNG) and a
Content-Security-Policy forbids any fetch, so the page looks the same on a laptop without network.
Experiment text comes from agents and LLMs: every value goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path
from typing import Any

from autosci_graph.graphs.state import LabState
from autosci_graph.reports.summary import TIMELINE_EVENTS, RunSummary, fmt, summarize, timeline_text, with_containment
from autosci_graph.reports.writer import champion_diff, progress_png
from autosci_graph.state import ExperimentEntry
from autosci_graph.task import ResearchTask

# Only inline styles, inline scripts and data: images may load; anything else is a console error.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d8dee4;--bg:#f6f8fa;--keep:#1a7f37;--bad:#cf222e;--warn:#9a6700;--acc:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);background:#fff}
main{max-width:1280px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:36px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
.sub{color:var(--muted);margin:0 0 18px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 16px;min-width:150px;background:var(--bg)}
.card b{display:block;font-size:20px}.card span{color:var(--muted);font-size:12px;letter-spacing:.02em}
.plot{max-width:100%;border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--bg);position:sticky;top:0;white-space:nowrap}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:hover{color:var(--acc)}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.change{max-width:380px}td.id{white-space:nowrap;font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
tr.keep{background:#dafbe1}tr.crash{background:#ffebe9}tr.pending_confirmation{background:#fff8c5}
.pill{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;background:var(--bg);border:1px solid var(--line)}
.pill.keep,.pill.active{color:var(--keep);border-color:var(--keep)}.pill.crash,.pill.falsified{color:var(--bad);border-color:var(--bad)}
.pill.dissolved,.pill.merged{color:var(--muted)}
.pos{color:var(--keep)}.neg{color:var(--bad)}
.lane{position:relative;height:22px;background:var(--bg);border-radius:4px;min-width:220px}
.bar{position:absolute;top:3px;bottom:3px;border-radius:3px;background:var(--acc);opacity:.75}
.bar.falsified{background:var(--bad)}.bar.dissolved,.bar.merged{background:#8c959f}
ol.timeline{padding-left:20px}ol.timeline li{margin:3px 0}.ev{font-weight:600}
pre.diff{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:12px;overflow:auto;font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace}
.diff .add{color:var(--keep);background:#dafbe1;display:block}.diff .del{color:var(--bad);background:#ffebe9;display:block}
.diff .hunk{color:var(--acc);display:block}
footer{margin-top:40px;color:var(--muted);font-size:12px}
"""

# Sort the table whose header was clicked; numeric columns carry their value in data-v.
_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
    var num = th.dataset.type === 'num';
    var key = function (tr) { var td = tr.cells[col]; return num ? td.dataset.v : td.textContent.trim(); };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === '' || y === '') { return (x === '') - (y === ''); }  // blanks last either way
      return dir * (num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y, undefined, {numeric: true}));
    });
    rows.forEach(function (tr) { body.appendChild(tr); });
  });
});
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body><main>
{body}
<footer>Written by autosci_graph · self-contained: no external resources.</footer>
</main><script>{js}</script></body></html>
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: float | int | None, text: str, cls: str = "num") -> str:
    """A numeric cell: ``text`` shown, ``value`` used for sorting (blank when missing)."""
    v = "" if value is None else repr(float(value))
    return f'<td class="{cls}" data-v="{v}">{_e(text)}</td>'


def _signed(gain: float | None) -> str:
    if gain is None:
        return '<td class="num" data-v="">-</td>'
    return _num(gain, f"{gain:+.4g}", "num " + ("pos" if gain > 0 else "neg" if gain < 0 else ""))


def _change_text(e: ExperimentEntry) -> str:
    change = e.proposal.change
    if change.description:
        return change.description
    knobs = ", ".join(f"{k}={json.dumps(v)}" for k, v in change.knobs.items())
    return knobs or e.proposal.rationale or e.kind


def _header(s: RunSummary) -> str:
    m = s.task.metric
    cards = [
        ("baseline", fmt(s.baseline_metric)), ("champion", fmt(s.champion.metric)),
        ("gain", "-" if s.improvement is None else f"{s.improvement:+.4g}"),
        ("experiments", f"{len(s.entries)} ({s.keeps} kept)"),
        ("noise σ", f"{fmt(s.noise_sigma, 3)} ({s.noise_dof} dof)"),
        ("device-seconds", f"{s.device_seconds():.0f}"),
    ]
    if s.final_eval:
        cards.insert(2, (f"held-out {s.final_eval.get('metric_name') or m.name}", fmt(s.final_eval.get("metric"))))
    cells = "".join(f"<div class=card><span>{_e(k)}</span><b>{_e(v)}</b></div>" for k, v in cards)
    return (f"<h1>{_e(s.task.name)} · run {_e(s.run_id)}</h1>"
            f"<p class=sub>{_e(m.name)} ({_e(m.direction)}) · baseline {_e(fmt(s.baseline_metric))} → champion "
            f"{_e(fmt(s.champion.metric))} · stop reason: {_e(s.stop_reason or 'still running')}</p>"
            f"<div class=cards>{cells}</div>"
            + "".join(f"<p class=sub><b>{_e(line)}</b></p>" for line in s.containment()))


def _plot(s: RunSummary) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "progress.png"
        progress_png(s, path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<h2>Progress</h2><img class=plot alt="metric per experiment and the champion frontier" src="data:image/png;base64,{data}">'


def _experiments(s: RunSummary) -> str:
    cols = [("#", "num"), ("id", ""), ("team", ""), ("kind", ""), ("axis", ""), ("direction", ""), ("change", ""),
            (s.task.metric.name, "num"), ("gain", "num"), ("outcome", ""), ("status", ""), ("seed", "num"), ("duration s", "num")]
    head = "".join(f'<th data-type="{t}" title="click to sort">{_e(c)}</th>' for c, t in cols)
    rows = []
    for e in s.entries:
        r = e.result
        rows.append(
            f'<tr class="{_e(e.outcome)}">{_num(e.index, str(e.index))}<td class=id>{_e(r.experiment_id)}</td>'
            f"<td>{_e(e.proposal.team or '-')}</td><td>{_e(e.kind)}</td><td>{_e(e.proposal.axis or '-')}</td>"
            f"<td>{_e(e.proposal.direction or '-')}</td>"
            f'<td class=change title="{_e(e.note or e.proposal.rationale)}">{_e(_change_text(e))}</td>'
            f"{_num(r.metric, fmt(r.metric))}{_signed(e.gain)}<td><span class=\"pill {_e(e.outcome)}\">{_e(e.outcome)}</span></td>"
            f"<td>{_e(r.status)}</td>{_num(r.seed, str(r.seed))}{_num(r.duration_s, f'{r.duration_s:.1f}')}</tr>")
    return (f"<h2>Experiments ({len(s.entries)})</h2><table id=experiments class=sortable>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _teams(s: RunSummary) -> str:
    total = max([len(s.entries)] + [int(ev.get("at_experiment") or 0) for ev in s.events]) or 1
    regroups = sorted(int(ev.get("at_experiment") or 0) for ev in s.events if ev.get("type") == "regroup")
    ended = {ev.get("team"): int(ev.get("at_experiment") or 0) for ev in s.events if ev.get("type") == "team_falsified"}
    rows = []
    for t in s.teams:
        start = t.formed_at_experiment
        end = ended.get(t.team_id, total)
        if t.status in ("dissolved", "merged"):
            end = next((r for r in regroups if r >= start), total)
        left, width = 100 * start / total, max(1.0, 100 * (end - start) / total)
        h = t.hypothesis
        rows.append(
            f"<tr><td><b>{_e(t.team_id)}</b></td><td>{_e(h.statement)}<br><small>predicts: {_e(h.prediction)}"
            f"<br>falsified by: {_e(h.falsification)}</small></td><td>{_e(', '.join(h.axes))}</td>"
            f"<td><span class=\"pill {_e(t.status)}\">{_e(t.status)}</span></td>"
            f"<td class=num>{t.support}</td><td class=num>{t.refute}</td><td class=num>{t.experiments}</td>"
            f'<td><div class=lane title="experiments {start}–{end} of {total}"><div class="bar {_e(t.status)}" '
            f'style="left:{left:.2f}%;width:{min(width, 100 - left):.2f}%"></div></div></td></tr>')
    index = {e.result.experiment_id: e.index for e in s.entries}
    items = []
    for ev in s.events:
        kind = ev.get("type")
        if kind not in TIMELINE_EVENTS:
            continue
        if "at_experiment" in ev:
            where = f"after {ev['at_experiment']} experiments · "
        else:
            at = index.get(str(ev.get("experiment_id")))
            where = "" if at is None else f"experiment {at} · "
        what = timeline_text(ev)
        if kind == "promotion":
            what = f"{ev.get('experiment_id')}: {fmt(ev.get('previous'))} → {fmt(ev.get('metric'))} ({what})"
        items.append(f"<li><small>{_e(where)}</small><span class=ev>{_e(str(kind).replace('_', ' '))}</span> "
                     f"{_e(ev.get('team', ''))} {_e(what)}</li>")
    return ("<h2>Teams and their hypotheses</h2><table id=teams><thead><tr><th>team</th><th>hypothesis</th><th>axes</th>"
            "<th>status</th><th>support</th><th>refute</th><th>experiments</th><th>lifetime</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table><h2>Timeline</h2><ol class=timeline>{''.join(items)}</ol>")


def _diff(s: RunSummary) -> str:
    lines = []
    for line in champion_diff(s).splitlines():
        cls = ("hunk" if line.startswith("@@") else "" if line.startswith(("+++", "---"))
               else "add" if line.startswith("+") else "del" if line.startswith("-") else "")
        lines.append(f'<span class="{cls}">{_e(line)}</span>' if cls else _e(line) + "\n")
    who = s.champion.experiment_id or "default configuration"
    return (f"<h2>Champion: {_e(who)}</h2><p class=sub>{_e(s.champion.description)} · {_e(s.task.metric.name)} "
            f"{_e(fmt(s.champion.metric))} over seeds {_e(s.champion.seeds)}</p><pre class=diff>{''.join(lines)}</pre>")


def _dead_ends(s: RunSummary) -> str:
    if not s.dead_ends:
        return "<h2>Dead ends</h2><p class=sub>None recorded.</p>"
    rows = "".join(
        f"<tr><td class=id>{_e(d.experiment_id)}</td><td>{_e(d.family)}</td><td>{_e(d.axis or '-')}</td><td>{_e(d.direction or '-')}</td>"
        f"<td>{_e(json.dumps(d.value))}</td>{_num(d.delta, fmt(d.delta, 3))}<td>{_e(d.reason)}</td></tr>" for d in s.dead_ends)
    return ("<h2>Dead ends</h2><table id=dead-ends><thead><tr><th>experiment</th><th>family</th><th>axis</th>"
            f"<th>direction</th><th>value</th><th>delta</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>")


def render_html(s: RunSummary) -> str:
    """The report page of a run summary, as one HTML string."""
    body = "\n".join([_header(s), _plot(s), _experiments(s), _teams(s), _diff(s), _dead_ends(s)])
    return _PAGE.format(csp=_CSP, title=_e(f"{s.task.name} · run {s.run_id}"), css=_CSS, body=body, js=_JS)


def write_html(state: LabState | dict[str, Any], task: ResearchTask, run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` for a run's state and return its path.

    Example::

        spec, state = load_state(Path("runs/demo"))
        write_html(state, spec.task(), Path("runs/demo"))   # runs/demo/report.html
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "report.html"
    path.write_text(render_html(with_containment(summarize(state, task), run_dir)), encoding="utf-8")  # type: ignore[arg-type]
    return path
