"""Apply code edits the way language models write them, and turn them into canonical diffs.

The strict applier (:mod:`autosci_graph.tools.diffs`) wants a diff a tool would write. A model
writes something close: hunk headers with wrong numbers or counts (or a bare ``@@``), context
lines with drifted whitespace, paths without ``a/``/``b/``, no ``---``/``+++`` lines at all, the
whole thing inside a markdown fence, CRLF line ends -- or aider's SEARCH/REPLACE blocks instead of
a diff. :func:`apply_edit` accepts all of that and nothing looser: every hunk or block must match
the file (exactly, or with only whitespace and blank lines differing) at exactly one place, or at
the one place clearly nearest its stated line number (see :mod:`autosci_graph.tools.edits`);
otherwise it raises :class:`EditError` and applies nothing, in no file.
:func:`normalize_edit` then rewrites the edit as a canonical diff that the strict applier takes
exactly, so what is stored, shown and replayed is never a model's approximation.

Paths follow the same rules as :func:`autosci_graph.tools.workspace.check_diff` (only editable
files, no ``..``, no absolute paths, no creation or deletion), through the same helper.

    >>> files = {"train.py": "lr = 3e-4\\nsteps = 10\\n"}
    >>> apply_edit(files, "@@\\n-lr = 3e-4\\n+lr = 1e-3\\n steps = 10\\n", ["train.py"])
    {'train.py': 'lr = 1e-3\\nsteps = 10\\n'}
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from autosci_graph.tools.diffs import _FORBIDDEN_GIT_HEADERS, DiffError, _clean_path
from autosci_graph.tools.edits import EditError, Replacement, Tag, apply_replacements, from_search_replace
from autosci_graph.tools.workspace import _normalize

_FENCE = re.compile(r"^(```|~~~)")
_FENCE_ANYWHERE = re.compile(r"^\s*(```|~~~)")
# ORIGINAL/UPDATED: the same blocks in aider's older wording.
_SEARCH = re.compile(r"^\s*<{5,9} ?(SEARCH|ORIGINAL)\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9} ?(REPLACE|UPDATED)\s*$")
_PATH = re.compile(r"[\w.-]+(?:/[\w.-]+)*\.\w+")
_PATH_DECORATION = "`*#:'\" \t"
_OLD_START = re.compile(r"^@@+\s*-(\d+)")
_GIT_HEADER = re.compile(r'^diff --git ("[^"]*"|\S+) ("[^"]*"|\S+)\s*$')


def apply_edit(files: Mapping[str, str], edit: str, editable: Sequence[str]) -> dict[str, str]:
    """The new text of every file that ``edit`` changes, all files or none.

    ``files`` maps each editable path to its current text (e.g. the champion's code); ``edit`` is a
    unified diff or SEARCH/REPLACE blocks, possibly inside markdown fences, for one or several
    files. A file the edit leaves as it was is not in the result.

    Raises :class:`EditError` when a path is not allowed, a hunk or block matches nowhere or in
    several places that nothing tells apart, or the edit is neither format; nothing is applied
    then. ``files`` is only read.
    """
    text = edit.replace("\r\n", "\n")
    if not text.strip():
        raise EditError("the edit is empty; send a unified diff or SEARCH/REPLACE blocks")
    allowed = {PurePosixPath(e).as_posix() for e in editable}
    if any(_SEARCH.match(line) for line in text.split("\n")):
        if any(line.startswith("@@") for line in text.split("\n")):
            raise EditError("the edit mixes SEARCH/REPLACE blocks and unified-diff hunks (@@); write it in one format")
        per_file, sequential = _search_replace_edits(text, allowed), True
    else:
        per_file, sequential = _diff_edits(text, allowed), False
    changed: dict[str, str] = {}
    for path, replacements in per_file.items():
        if path not in files:
            given = ", ".join(sorted(files)) or "none"
            raise EditError(f"{path}: the edit changes this editable file but its current text was not given (given: {given})")
        new = apply_replacements(files[path], replacements, path, sequential=sequential)
        if new != files[path]:
            changed[path] = new
    return changed


def unified_diff(before: Mapping[str, str], after: Mapping[str, str]) -> str:
    """The canonical diff from ``before`` to ``after`` (path -> text); ``""`` when nothing changed.

    Git style (``--- a/PATH`` / ``+++ b/PATH``), three lines of context, files sorted by path, and
    ``\\ No newline at end of file`` where a file ends without one, so that
    :func:`autosci_graph.tools.workspace.apply_diff` applies it exactly.
    """
    missing = sorted(set(before) ^ set(after))
    if missing:
        raise EditError(f"unified_diff describes edits of existing files only; {', '.join(missing)} is not on both sides")
    parts: list[str] = []
    for path in sorted(before):
        old, new = before[path], after[path]
        if old == new:
            continue
        for line in difflib.unified_diff(_with_ends(old), _with_ends(new), f"a/{path}", f"b/{path}", n=3):
            parts.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(parts)


def normalize_edit(files: Mapping[str, str], edit: str, editable: Sequence[str]) -> str:
    """``edit`` applied to ``files`` and written back as a canonical diff (see :func:`unified_diff`)."""
    return unified_diff(files, {**files, **apply_edit(files, edit, editable)})


def _with_ends(text: str) -> list[str]:
    """Lines with their ``\\n`` (``str.splitlines`` would also split at form feeds and the like)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _checked(raw: str, allowed: set[str]) -> str:
    """The editable path ``raw`` names, by the rules of :func:`~autosci_graph.tools.workspace.check_diff`."""
    try:
        return _normalize(raw, allowed)
    except DiffError as exc:
        raise EditError(str(exc)) from exc


def _only_file(allowed: set[str], what: str) -> str:
    if len(allowed) == 1:
        return next(iter(allowed))
    raise EditError(
        f"{what} does not say which file it edits, and the task has {len(allowed)} editable files "
        f"({', '.join(sorted(allowed)) or 'none'}); name the file"
    )


# ---------------------------------------------------------------------------------------------
# SEARCH/REPLACE blocks


@dataclass(frozen=True)
class _Block:
    """One ``<<<<<<< SEARCH`` ... ``>>>>>>> REPLACE`` block; ``path`` as written before it, if at all."""

    path: str | None
    search: list[str]
    replace: list[str]
    #: 1-based line of the SEARCH marker in the edit text.
    line: int


def _parse_search_replace(text: str) -> list[_Block]:
    """The SEARCH/REPLACE blocks of ``text`` (newlines already ``\\n``), in order.

    The file name is the nearest line above a block that is not blank or a fence, when it looks
    like a path (``train.py``, ``**train.py**``, ``# train.py:``) or ends with one; or a path on
    the opening fence itself (a fence line such as ```python:train.py).
    """
    lines = text.split("\n")
    blocks: list[_Block] = []
    i, floor = 0, 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            i += 1
            continue
        start = i
        path = _path_above(lines, start, floor)
        search, i = _collect(lines, i + 1, _DIVIDER, start, "=======")
        replace, i = _collect(lines, i + 1, _REPLACE, start, ">>>>>>> REPLACE")
        blocks.append(_Block(path, search, replace, start + 1))
        i += 1
        floor = i
    return blocks


def _collect(lines: list[str], i: int, end: re.Pattern[str], start: int, marker: str) -> tuple[list[str], int]:
    body: list[str] = []
    while i < len(lines) and not end.match(lines[i]):
        if _SEARCH.match(lines[i]):
            break
        body.append(lines[i])
        i += 1
    if i >= len(lines) or not end.match(lines[i]):
        raise EditError(
            f"the SEARCH/REPLACE block at line {start + 1} of the edit has no {marker!r} line; "
            "write each block as <<<<<<< SEARCH, the old lines, =======, the new lines, >>>>>>> REPLACE"
        )
    return body, i


def _path_above(lines: list[str], i: int, floor: int) -> str | None:
    j = i - 1
    while j >= floor and (not lines[j].strip() or _FENCE_ANYWHERE.match(lines[j])):
        named = _PATH.search(lines[j].strip()[3:]) if _FENCE_ANYWHERE.match(lines[j]) else None
        if named:
            return named.group(0)
        j -= 1
    if j < floor:
        return None
    cleaned = lines[j].strip().strip(_PATH_DECORATION)
    if cleaned and not any(c.isspace() for c in cleaned) and ("." in cleaned or "/" in cleaned):
        return cleaned
    last = lines[j].split()[-1].strip(_PATH_DECORATION) if lines[j].split() else ""
    return last if _PATH.fullmatch(last) else None


def _search_replace_edits(text: str, allowed: set[str]) -> dict[str, list[Replacement]]:
    per_file: dict[str, list[Replacement]] = {}
    previous: str | None = None
    for k, block in enumerate(_parse_search_replace(text), 1):
        label = f"SEARCH/REPLACE block {k} (line {block.line} of the edit)"
        if block.path is not None:
            path = _checked(block.path, allowed)
        else:
            # aider's convention: a block without a file name edits the file of the block before.
            path = previous or _only_file(allowed, label)
        previous = path
        if not any(line.strip() for line in block.search):
            raise EditError(
                f"{path}: {label} has an empty SEARCH section; put the lines the new code goes after in "
                "SEARCH and repeat them, followed by the new lines, in REPLACE"
            )
        per_file.setdefault(path, []).append(from_search_replace(block.search, block.replace, label))
    return per_file


# ---------------------------------------------------------------------------------------------
# unified diffs


@dataclass
class _Section:
    """One file's part of a diff; paths as written (None: no header, the file is implied)."""

    old: str | None
    new: str | None
    #: 1-based line of the edit where the section starts.
    line: int
    from_git_line: bool = False
    hunks: list[Replacement] = field(default_factory=list)


def _diff_edits(text: str, allowed: set[str]) -> dict[str, list[Replacement]]:
    sections = _parse_diff(text)
    if not sections:
        raise EditError(
            "the edit is neither a unified diff nor SEARCH/REPLACE blocks: no @@ hunk and no <<<<<<< SEARCH "
            "line found; send a unified diff (--- a/FILE, +++ b/FILE, @@ hunks) or SEARCH/REPLACE blocks"
        )
    per_file: dict[str, list[Replacement]] = {}
    for section in sections:
        shown = section.new or section.old
        if not section.hunks:
            raise EditError(f"the diff section for {shown!r} at line {section.line} of the edit has no @@ hunks; add them or drop the section")
        if section.old is None or section.new is None:
            path = _checked(shown, allowed) if shown else _only_file(allowed, f"the diff at line {section.line} of the edit")
        else:
            old, path = _checked(section.old, allowed), _checked(section.new, allowed)
            if old != path:
                raise EditError(f"the diff renames {old!r} to {path!r}; only in-place edits of existing files are allowed")
        per_file.setdefault(path, []).extend(section.hunks)
    return per_file


def _parse_diff(text: str) -> list[_Section]:
    """The file sections of a diff, tolerating what models leave out. Prose around it is skipped."""
    lines = text.split("\n")
    sections: list[_Section] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("@@"):
            if not sections:
                sections.append(_Section(None, None, i + 1))
            i = _read_hunk(lines, i, sections[-1])
            continue
        if any(line.startswith(h) for h in _FORBIDDEN_GIT_HEADERS):
            raise EditError(f"line {i + 1} of the edit: {line.strip()!r}: only edits of existing files are allowed")
        header = _file_header(lines, i)
        if header is None:
            i += 1
            continue
        old, new, following = header
        last = sections[-1] if sections else None
        if last is not None and last.from_git_line and not last.hunks and not line.startswith("diff --git"):
            last.old, last.new, last.from_git_line = old, new, False  # the ---/+++ lines after "diff --git"
        else:
            sections.append(_Section(old, new, i + 1, from_git_line=line.startswith("diff --git")))
        i = following
    return sections


def _file_header(lines: list[str], i: int) -> tuple[str, str, int] | None:
    """(old path, new path, next line) if a file header starts at line ``i``."""
    line = lines[i]
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    git = _GIT_HEADER.match(line)
    if git:
        return _clean_path(git.group(1)), _clean_path(git.group(2)), i + 1
    if line.startswith("--- ") and nxt.startswith("+++ "):
        return _clean_path(line[4:]), _clean_path(nxt[4:]), i + 2
    if line.startswith("--- ") and nxt.startswith("@@") or line.startswith("+++ "):
        path = _clean_path(line[4:])  # one of the two lines is missing: the other names the file
        return path, path, i + 1
    return None


def _ends_hunk(lines: list[str], j: int) -> bool:
    line = lines[j]
    return bool(
        line.startswith(("@@", "diff --git "))
        or _FENCE.match(line)
        or (line.startswith("--- ") and j + 1 < len(lines) and lines[j + 1].startswith("+++ "))
    )


def _read_hunk(lines: list[str], i: int, section: _Section) -> int:
    """Read the hunk whose header is line ``i``, up to the next header or fence, whatever its counts say."""
    header = lines[i].strip()
    j = i + 1
    while j < len(lines) and not _ends_hunk(lines, j):
        j += 1
    body = lines[i + 1 : j]
    # A blank or unprefixed line after the last change is a separator or prose, not part of the hunk.
    while body and (not body[-1] or body[-1][0] not in " +-\\"):
        body.pop()
    label = f"hunk {len(section.hunks) + 1} ({header[:60]}, line {i + 1} of the edit)"
    section.hunks.append(_hunk(header, body, label))
    return j


def _hunk(header: str, body: list[str], label: str) -> Replacement:
    ops: list[tuple[Tag, str]] = []
    old_ends_bare = new_ends_bare = False
    for line in body:
        if line.startswith("\\"):  # "\ No newline at end of file", about the line before it
            last = ops[-1][0] if ops else " "
            old_ends_bare = old_ends_bare or last in " -"
            new_ends_bare = new_ends_bare or last in " +"
        elif line[:1] in ("-", "+", " "):
            ops.append((" " if line[0] == " " else "-" if line[0] == "-" else "+", line[1:]))
        else:
            # An empty line is an empty context line whose lone space an editor stripped; any other
            # unprefixed line is a context line that lost its space. Both must still match the file.
            ops.append((" ", line))
    final_newline = False if new_ends_bare else True if old_ends_bare else None
    start = _OLD_START.match(header)
    hint = max(0, int(start.group(1)) - 1) if start else None
    return Replacement(tuple(ops), label, hint, final_newline)


__all__ = ["EditError", "apply_edit", "normalize_edit", "unified_diff"]
