"""The code an LLM scientist sees: editable files at the champion's code state, numbered, within a
character budget (whole when they fit, else an outline plus the region in focus), the champion's
change from the original, the accepted edit formats, and, for the critic, the increment it reviews.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from autosci_graph.scientists.base import LabView
from autosci_graph.state import Proposal
from autosci_graph.tools.patches import EditError, normalize_edit


_EDIT_FORMATS = """HOW TO CHANGE CODE: put the edit in "diff" (direction "code", axis "code:<what>", e.g. code:activation).
It is an increment against the files exactly as shown above (they already hold the champion's change).
Two formats are accepted:
1. a unified diff: "--- a/FILE", "+++ b/FILE", then @@ hunks; context and "-" lines copied exactly from the file;
2. SEARCH/REPLACE blocks: the file name on its own line, "<<<<<<< SEARCH", the exact old lines,
   "=======", the new lines, ">>>>>>> REPLACE".
Copy lines without their "N| " prefix. Each hunk or SEARCH must match one place: give a few lines of context."""

_DEF = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s")
_TOP_DEF = re.compile(r"^(?:async\s+)?(?:def|class)\s|^@")
_TOP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*(?::[^=]*)?=(?!=)")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
#: Lines shown around a touched line that lies outside any def/class.
_AROUND = 6


def _numbered(lines: Sequence[str], shown: Sequence[int]) -> str:
    """The lines at 0-based indices ``shown`` (sorted), numbered from 1; "..." marks each gap."""
    out: list[str] = []
    last = -1
    for i in shown:
        if i > last + 1:
            out.append("   ...")
        out.append(f"{i + 1:>4}|" + (f" {lines[i]}" if lines[i] else ""))
        last = i
    if last < len(lines) - 1:
        out.append("   ...")
    return "\n".join(out)


def _file_lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def touched_lines(diff: str | None, path: str) -> list[int]:
    """0-based lines of ``path``'s new text that a canonical diff adds (or deletes before)."""
    touched: list[int] = []
    current, new_line, old_left, new_left = None, 0, 0, 0
    for line in (diff or "").split("\n"):
        if old_left <= 0 and new_left <= 0:  # between hunks: file headers and hunk headers
            if line.startswith("+++ "):
                name = line[4:].split("\t")[0].strip()
                current = name[2:] if name.startswith("b/") else name
            hunk = _HUNK.match(line)
            if hunk:
                new_line = int(hunk.group(3)) - 1
                old_left, new_left = int(hunk.group(2) or 1), int(hunk.group(4) or 1)
            continue
        tag = line[:1]
        if tag in "+-" and line and current == path:
            touched.append(new_line)
        if tag == "+":
            new_line, new_left = new_line + 1, new_left - 1
        elif tag == "-":
            old_left -= 1
        elif tag == " " or not line:
            new_line, old_left, new_left = new_line + 1, old_left - 1, new_left - 1
    return touched


def _focus(lines: Sequence[str], touched: Sequence[int], budget: int) -> list[range]:
    """The regions to show in full: each top-level def/class holding a touched line (a window
    around it when there is none, or when the block alone would take over half the budget);
    with nothing touched, the module's head up to its first def/class (its constants)."""
    n = len(lines)
    starts = [i for i, line in enumerate(lines) if _TOP_DEF.match(line)]
    if not touched:
        head = next((i for i in starts), n)
        while head > 0 and not lines[head - 1].strip():
            head -= 1
        return [range(0, head)]
    regions: list[range] = []
    for t in sorted(set(min(max(t, 0), n - 1) for t in touched)):
        if any(t in r for r in regions):
            continue
        start = max((i for i in starts if i <= t), default=None)
        block = None
        if start is not None:
            while start < n - 1 and lines[start].startswith("@"):
                start += 1  # past the decorators, to the def they decorate
            end = next((i for i in range(start + 1, n) if lines[i][:1] not in ("", " ", "\t", "#", ")", "]", "}")), n)
            while end > start + 1 and not lines[end - 1].strip():
                end -= 1
            while start > 0 and lines[start - 1].startswith("@"):
                start -= 1
            if t < end and sum(len(lines[i]) + 7 for i in range(start, end)) <= budget // 2:
                block = range(start, end)
        regions.append(block or range(max(0, t - _AROUND), min(n, t + _AROUND + 1)))
    return regions


def render_file(path: str, text: str, *, budget: int, touched: Sequence[int] = ()) -> str:
    """One file with line numbers in about ``budget`` characters: whole if it fits, otherwise an
    outline (def/class lines, top-level names) and the focus regions in full (see :func:`_focus`;
    ``touched`` are 0-based lines the champion's change touched, from :func:`touched_lines`)."""
    lines = _file_lines(text)
    whole = f"=== {path} ({len(lines)} lines, in full) ===\n{_numbered(lines, range(len(lines)))}"
    if len(whole) <= budget:
        return whole
    regions = _focus(lines, touched, budget)
    parts = ", ".join(f"{r.start + 1}-{r.stop}" for r in regions if r) or "none"
    head = (f"=== {path} ({len(lines)} lines, too long to show whole: an outline of its def/class lines and "
            f"top-level names, and lines {parts} in full as far as they fit; ... marks lines left out) ===")
    room = max(0, budget - len(head) - 1)
    outline = [i for i, line in enumerate(lines) if _DEF.match(line) or _TOP_NAME.match(line)]
    # The outline may take half the room first, the focus regions what they need, the outline the rest.
    shown = _fit(lines, [], outline, room // 2)
    for region in regions:
        shown = _fit(lines, shown, list(region), room)
    shown = _fit(lines, shown, outline, room)
    return f"{head}\n{_numbered(lines, shown)}"


def _fit(lines: Sequence[str], shown: list[int], wanted: list[int], budget: int) -> list[int]:
    """``shown`` plus the longest prefix of ``wanted`` that keeps the rendering within ``budget``."""
    lo, hi = 0, len(wanted)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(_numbered(lines, sorted(set(shown) | set(wanted[:mid])))) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return sorted(set(shown) | set(wanted[:lo]))


def render_code(view: LabView, *, code_budget_chars: int = 12_000, champion_diff_chars: int = 4_000) -> str:
    """The code the experimenter may change: every editable file at the champion's code state,
    numbered, within ``code_budget_chars`` (small files first get their fair share, what
    they leave goes to the larger ones); the champion's change; the accepted edit formats.
    Empty when the view carries no files."""
    files = view.champion_files
    if not files:
        return ""
    budget, left = code_budget_chars, len(files)
    shares: dict[str, int] = {}
    for path in sorted(files, key=lambda p: len(files[p])):
        shares[path] = budget // left
        lines = _file_lines(files[path])
        budget -= min(shares[path], len(_numbered(lines, range(len(lines)))) + len(path) + 40)
        left -= 1
    rendered = [render_file(p, files[p], budget=shares[p], touched=touched_lines(view.champion.diff, p)) for p in files]
    return "\n\n".join(
        ["CHAMPION CODE (the editable files with the champion's change applied; line numbers are not part of the files):",
         *rendered, _champion_change(view.champion.diff, champion_diff_chars), _EDIT_FORMATS]
    )


def _champion_change(diff: str | None, limit: int) -> str:
    if not diff or not diff.strip():
        return "CHAMPION'S CODE CHANGE: none yet (the files are the task's originals)."
    return f"CHAMPION'S CODE CHANGE from the original files (already applied above):\n{_cut(diff, limit, 'change')}"


def _cut(text: str, limit: int, what: str) -> str:
    """``text`` up to ``limit`` characters, cut at a line end, with a note on what was left out."""
    text = text.rstrip("\n")
    if len(text) <= limit:
        return text
    kept = text[:limit].rsplit("\n", 1)[0] if "\n" in text[:limit] else text[:limit]
    rest = text[len(kept):].count("\n")
    return f"{kept}\n[... {rest} more line(s) of the {what} left out]"


def render_increment(view: LabView, proposal: Proposal, *, code_budget_chars: int = 12_000) -> str:
    """A proposal's code increment for its reviewer: the files it touches and the edit, rewritten
    as a canonical diff of the champion's files when it applies to them (as written otherwise)."""
    diff = proposal.change.diff
    if not diff or not diff.strip():
        return ""
    editable = list(view.task.editable)
    try:
        shown = normalize_edit(view.champion_files, diff, editable) if view.champion_files else None
        note = "as it applies to the champion's files"
    except EditError as exc:
        shown, note = None, f"as written; it does not apply to the champion's files: {exc}"
    files = touched_files(shown or diff, editable)
    return (f"CODE INCREMENT TO REVIEW (touches {', '.join(files) or 'no editable file'}; {note}):\n"
            f"{_cut(shown or diff, code_budget_chars, 'increment')}")


def touched_files(edit: str, editable: Sequence[str]) -> list[str]:
    """The editable files an edit names (in a diff header or above a SEARCH block)."""
    return [f for f in editable if re.search(rf"(^|[\s/`*]){re.escape(f)}($|[\s`*:])", edit, re.MULTILINE)]
