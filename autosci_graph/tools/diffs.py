"""Parse and apply unified diffs, in pure Python, refusing anything but edits of known files.

A code change is a unified diff (``diff -u`` or ``git diff`` output). Only modifications of
existing files are accepted: no creation, deletion, rename, copy, mode change or binary patch,
since each of those is a way to touch a file the task did not declare editable. Hunks must match
exactly (at any offset); there is no fuzz, so a diff written against another version of the file
is rejected rather than applied somewhere surprising.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_FORBIDDEN_GIT_HEADERS = (
    "new file mode", "deleted file mode", "old mode", "new mode", "rename from", "rename to",
    "copy from", "copy to", "GIT binary patch", "Binary files",
)


class DiffError(ValueError):
    """The diff is malformed, does not apply, or asks for something that is not allowed."""


@dataclass
class Hunk:
    old_start: int
    old_lines: list[str] = field(default_factory=list)
    new_lines: list[str] = field(default_factory=list)
    #: ``\ No newline at end of file`` after the old / new side.
    old_no_eol: bool = False
    new_no_eol: bool = False


@dataclass
class FilePatch:
    """The hunks of one file; ``old_path``/``new_path`` as written in the diff."""

    old_path: str
    new_path: str
    hunks: list[Hunk] = field(default_factory=list)


def _clean_path(raw: str) -> str:
    path = raw.split("\t", 1)[0].strip()
    if len(path) >= 2 and path[0] == path[-1] == '"':
        path = path[1:-1]
    return path


def parse_diff(text: str) -> list[FilePatch]:
    """Split a unified diff into per-file patches. Raises :class:`DiffError` on anything odd."""
    lines = text.replace("\r\n", "\n").split("\n")
    patches: list[FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if any(line.startswith(h) for h in _FORBIDDEN_GIT_HEADERS):
            raise DiffError(f"diff line {i + 1}: {line.strip()!r}: only edits of existing files are allowed")
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            patch = FilePatch(_clean_path(line[4:]), _clean_path(lines[i + 1][4:]))
            patches.append(patch)
            i += 2
            while i < len(lines) and lines[i].startswith("@@"):
                i = _parse_hunk(lines, i, patch)
            if not patch.hunks:
                raise DiffError(f"diff for {patch.new_path!r} has no hunks")
            continue
        if line.startswith("@@"):
            raise DiffError(f"diff line {i + 1}: a hunk outside a file section (missing ---/+++ lines)")
        i += 1
    if not patches:
        raise DiffError("not a unified diff: no '--- a/FILE' / '+++ b/FILE' section found")
    return patches


def _parse_hunk(lines: list[str], i: int, patch: FilePatch) -> int:
    m = _HUNK.match(lines[i])
    if not m:
        raise DiffError(f"diff line {i + 1}: malformed hunk header {lines[i]!r}")
    old_count = int(m.group(2)) if m.group(2) is not None else 1
    new_count = int(m.group(4)) if m.group(4) is not None else 1
    hunk = Hunk(old_start=int(m.group(1)))
    i += 1
    last = ""
    while len(hunk.old_lines) < old_count or len(hunk.new_lines) < new_count:
        if i >= len(lines):
            raise DiffError(f"hunk at line {m.group(0)!r} of {patch.new_path!r} ends early (diff truncated?)")
        line = lines[i]
        tag, body = (line[:1], line[1:]) if line else (" ", "")  # editors strip a lone " " line
        if tag == " ":
            hunk.old_lines.append(body)
            hunk.new_lines.append(body)
        elif tag == "-":
            hunk.old_lines.append(body)
        elif tag == "+":
            hunk.new_lines.append(body)
        elif tag == "\\":
            _mark_no_eol(hunk, last)
        else:
            raise DiffError(f"diff line {i + 1}: unexpected {line[:40]!r} inside a hunk of {patch.new_path!r}")
        last = tag
        i += 1
    if len(hunk.old_lines) != old_count or len(hunk.new_lines) != new_count:
        raise DiffError(f"hunk {m.group(0)!r} of {patch.new_path!r}: line counts do not match its header")
    if i < len(lines) and lines[i].startswith("\\"):
        _mark_no_eol(hunk, last)
        i += 1
    if _stray_hunk_line(lines, i):
        # Without this, the lines past a too-small count would be dropped and the rest applied.
        raise DiffError(
            f"diff line {i + 1}: {lines[i][:40]!r} follows hunk {m.group(0)!r} of {patch.new_path!r} but its header "
            "does not count it; fix the header's line counts"
        )
    patch.hunks.append(hunk)
    return i


def _stray_hunk_line(lines: list[str], i: int) -> bool:
    """Whether line ``i``, right after a hunk, looks like one more line of it."""
    if i >= len(lines) or lines[i][:1] not in (" ", "+", "-") or lines[i] == "-- ":  # "-- ": a mail signature
        return False
    return not (lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "))


def _mark_no_eol(hunk: Hunk, last: str) -> None:
    if last in ("-", " "):
        hunk.old_no_eol = True
    if last in ("+", " "):
        hunk.new_no_eol = True


def _find(lines: list[str], block: list[str], expected: int, lo: int) -> int:
    """Index where ``block`` matches ``lines`` exactly, nearest to ``expected`` and not before ``lo``."""
    n = len(block)
    if n == 0:
        return max(lo, min(expected, len(lines)))
    best = -1
    for pos in range(lo, len(lines) - n + 1):
        if lines[pos : pos + n] == block and (best < 0 or abs(pos - expected) < abs(best - expected)):
            best = pos
            if pos >= expected:
                break
    return best


def apply_patch(original: str, patch: FilePatch) -> str:
    """The text of a file after ``patch``; raises :class:`DiffError` if a hunk does not match."""
    had_eol = original.endswith("\n")
    lines = original.split("\n") if original else []
    if had_eol:
        lines.pop()
    # A CRLF file keeps its line ends (the diff's lines arrive without their "\r").
    terminated = lines[:-1] if lines and not had_eol else lines
    newline = "\r\n" if terminated and all(ln.endswith("\r") for ln in terminated) else "\n"
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    out: list[str] = []
    cursor = 0
    offset = 0
    ends_without_eol = not had_eol
    for hunk in patch.hunks:
        # A pure insertion ("-N,0") goes *after* old line N; otherwise the block starts at line N.
        stated = hunk.old_start - 1 if hunk.old_lines else hunk.old_start
        expected = max(0, stated + offset)
        pos = _find(lines, hunk.old_lines, expected, cursor)
        if pos < 0:
            first = hunk.old_lines[0] if hunk.old_lines else ""
            raise DiffError(f"{patch.new_path}: hunk at line {hunk.old_start} does not apply (context {first[:60]!r} not found)")
        out.extend(lines[cursor:pos])
        out.extend(hunk.new_lines)
        cursor = pos + len(hunk.old_lines)
        offset = pos - stated
        if cursor == len(lines):
            ends_without_eol = hunk.new_no_eol
    out.extend(lines[cursor:])
    text = newline.join(out)
    if out and not ends_without_eol:
        text += newline
    return text
