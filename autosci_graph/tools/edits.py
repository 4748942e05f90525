"""Locate a block of old lines in a file and replace it, tolerating the slips of model-written edits.

Both edit formats that :mod:`autosci_graph.tools.patches` accepts come down to a
:class:`Replacement`: a run of old lines (a diff hunk's context and removed lines, or a SEARCH
block) to find in the file and the lines that take their place. Finding is careful rather than
clever:

1. the old lines are compared with whitespace ignored (trailing spaces, tabs for spaces, a whole
   block indented too much or too little), then also with blank lines ignored -- never with any
   other difference;
2. a block that matches several places is taken at the one clearly nearest its stated line
   number, if it has one, and if it does not match exactly somewhere else; otherwise it is
   refused as ambiguous. Blank lines alone never place a block;
3. after a whitespace-insensitive match the unchanged lines keep the file's own text and the new
   lines are shifted by the indentation difference, which must be the same for every line.

Anything else raises :class:`EditError` with the file, the block, what did not match, the nearest
similar lines of the file and how to fix the edit.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from autosci_graph.tools.diffs import DiffError

Tag = Literal[" ", "-", "+"]


class EditError(DiffError):
    """An edit that cannot be applied safely; the message names the file, the block and the fix."""


@dataclass(frozen=True)
class Replacement:
    """Old lines to find in a file and what replaces them, as diff-style ``(tag, text)`` operations.

    ``" "`` lines are unchanged context, ``"-"`` lines are removed, ``"+"`` lines are added.
    """

    ops: tuple[tuple[Tag, str], ...]
    #: How error messages name it, e.g. ``hunk 2 (@@ -40,7 +40,8 @@)``.
    label: str
    #: 0-based line where the old lines are said to start (a hunk header's number), if any.
    hint: int | None = None
    #: ``\ No newline at end of file`` markers: whether the file should end with a newline once
    #: this replacement reaches its end (None: keep what the file has).
    final_newline: bool | None = None

    @property
    def old(self) -> list[str]:
        return [text for tag, text in self.ops if tag != "+"]

    @property
    def new(self) -> list[str]:
        return [text for tag, text in self.ops if tag != "-"]


def from_search_replace(search: Sequence[str], replace: Sequence[str], label: str) -> Replacement:
    """A :class:`Replacement` for a SEARCH/REPLACE pair.

    Lines the two sides share become context, so that after a whitespace-insensitive match they
    keep the file's exact text instead of the model's copy. They are compared exactly: a line
    whose indentation alone changes is a change, not context.
    """
    ops: list[tuple[Tag, str]] = []
    matcher = difflib.SequenceMatcher(None, list(search), list(replace), autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            ops += [(" ", line) for line in search[i1:i2]]
        else:
            ops += [("-", line) for line in search[i1:i2]]
            ops += [("+", line) for line in replace[j1:j2]]
    return Replacement(tuple(ops), label)


def apply_replacements(text: str, replacements: Sequence[Replacement], path: str, *, sequential: bool) -> str:
    """``text`` with every replacement made; raises :class:`EditError` and changes nothing otherwise.

    ``sequential``: each replacement is found in the text the previous ones produced (SEARCH/REPLACE
    blocks, as aider applies them); otherwise all are found in the original text and must not
    overlap (the hunks of a unified diff).
    """
    newline = "\r\n" if text.count("\r\n") == text.count("\n") > 0 else "\n"
    final_newline = text.endswith("\n")
    lines = [line.removesuffix("\r") for line in text.split("\n")] if newline == "\r\n" else text.split("\n")
    if final_newline or not text:
        lines.pop()
    style = _Indent.of(lines)
    if sequential:
        for given in replacements:
            start, rep = _locate(lines, given, path)
            end = start + len(rep.old)
            final_newline = _newline_after(rep, end == len(lines), final_newline)
            lines = lines[:start] + _render(lines[start:end], rep, style, path) + lines[end:]
    else:
        out: list[str] = []
        cursor = 0
        previous: Replacement | None = None
        for start, rep in sorted(_place(lines, replacements, path), key=lambda placed: placed[0]):
            if previous is not None and start < cursor:
                rep = _past_overlap(previous, rep, cursor - start, path)
                start = cursor
            previous = rep
            end = start + len(rep.old)
            out += lines[cursor:start] + _render(lines[start:end], rep, style, path)
            cursor = end
            final_newline = _newline_after(rep, end == len(lines), final_newline)
        lines = out + lines[cursor:]
    result = newline.join(lines)
    return result + newline if lines and final_newline else result


def _past_overlap(previous: Replacement, rep: Replacement, overlap: int, path: str) -> Replacement:
    """``rep`` without its first ``overlap`` old lines, which ``previous`` also covers.

    Models often write one hunk per change, each with its three lines of context, so that the
    context of neighbouring hunks overlaps. That is fine when the shared lines are unchanged
    context on both sides; if either hunk changes them, the two hunks conflict.
    """
    def leading_context(ops: Sequence[tuple[Tag, str]]) -> int:
        n = 0
        for tag, _ in ops:
            if tag != " ":
                break
            n += 1
        return n

    if leading_context(rep.ops) < overlap or leading_context(previous.ops[::-1]) < overlap or len(rep.old) <= overlap:
        raise EditError(
            f"{path}: {rep.label} overlaps the hunk before it and one of them changes the shared lines; "
            "merge the two into one hunk written against the current file"
        )
    return Replacement(rep.ops[overlap:], rep.label, rep.hint, rep.final_newline)


def _place(lines: list[str], replacements: Sequence[Replacement], path: str) -> list[tuple[int, Replacement]]:
    """Where each hunk starts in the original ``lines``.

    A stated line number is moved by how far off the previous hunk's number was, as ``patch``
    does: one wrong header usually means the later ones are wrong by as much.
    """
    placed: list[tuple[int, Replacement]] = []
    offset = 0
    for rep in replacements:
        stated = rep.hint
        if stated is not None:
            rep = Replacement(rep.ops, rep.label, max(0, stated + offset), rep.final_newline)
        start, fitted = _locate(lines, rep, path)
        if stated is not None:
            offset = start - stated
        placed.append((start, fitted))
    return placed


def _newline_after(rep: Replacement, at_end: bool, current: bool) -> bool:
    return rep.final_newline if at_end and rep.final_newline is not None else current


def _key(line: str) -> str:
    """A line with whitespace ignored: leading and trailing removed, inner runs made one space."""
    return " ".join(line.split())


def _locate(lines: list[str], rep: Replacement, path: str) -> tuple[int, Replacement]:
    """Where ``rep.old`` starts in ``lines`` (0-based), and ``rep`` fitted to the file's blank lines.

    Lines are compared with whitespace ignored and, if that finds nothing, with blank lines
    ignored too (a model often shows one blank line where the file has two). Raises
    :class:`EditError` if the block is nowhere, or in several places and :func:`_choose` cannot
    tell which.
    """
    old = rep.old
    if not any(line.strip() for line in old):
        # Blank lines say nothing about where they are, so a line number cannot pick among them.
        blank = _positions(lines, old) if old else [0] if not lines else []
        if len(blank) == 1:
            return blank[0], rep
        raise EditError(
            f"{path}: {rep.label} has no unchanged or removed lines to anchor it (only blank lines or none); "
            "include a few lines of the file as they are now around the change, so it can be placed"
        )
    keys = [_key(line) for line in lines]
    loose = _positions(keys, [_key(line) for line in old])
    if loose:
        exact = [p for p in loose if lines[p : p + len(old)] == old]
        return _choose(loose, exact, rep, path), rep
    filled = [i for i, key in enumerate(keys) if key]
    old_filled = [_key(line) for line in old if line.strip()]
    spots = _positions([keys[i] for i in filled], old_filled)
    if not spots:
        raise _not_found(lines, rep, path)
    start = _choose([filled[s] for s in spots], [], rep, path)
    end = filled[filled.index(start) + len(old_filled) - 1] + 1
    return start, _fit_blank_lines(lines[start:end], rep, path)


def _fit_blank_lines(found: list[str], rep: Replacement, path: str) -> Replacement:
    """``rep`` with blank old lines that ``found`` lacks dropped and blank lines that only
    ``found`` has added as context, so that its old lines stand line for line for ``found``."""
    old = rep.old
    extra: dict[int, list[str]] = {}  # old line index -> the file's blank lines just before it
    missing: set[int] = set()  # old lines (blank) that the file does not have there
    matcher = difflib.SequenceMatcher(None, [_key(f) for f in found], [_key(o) for o in old], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "delete":
            extra[j1] = found[i1:i2]
        elif op == "insert":
            missing.update(range(j1, j2))
        elif op == "replace":  # only blank lines may differ here; anything else is a bug, not a fit
            raise EditError(f"{path}: {rep.label} matches the file only with blank lines ignored, and then not line for line")
    ops: list[tuple[Tag, str]] = []
    j = 0  # index of the next old line
    for tag, text in rep.ops:
        if tag == "+":
            ops.append((tag, text))
            continue
        ops += [(" ", blank) for blank in extra.get(j, [])]
        if j not in missing:
            ops.append((tag, text))
        elif tag == "-":
            raise EditError(
                f"{path}: {rep.label} removes a blank line that the file does not have there (its other lines match "
                "with blank lines ignored); copy the blank lines around the change exactly from the file"
            )
        j += 1
    return Replacement(tuple(ops), rep.label, rep.hint, rep.final_newline)


def _positions(lines: list[str], block: list[str]) -> list[int]:
    """Every index where ``block`` (not empty) occurs in ``lines``."""
    n = len(block)
    first = block[0]
    return [i for i in range(len(lines) - n + 1) if lines[i] == first and lines[i : i + n] == block]


def _choose(positions: list[int], exact: list[int], rep: Replacement, path: str) -> int:
    """The one of ``positions`` (all matching with whitespace ignored; ``exact`` also without)
    that ``rep`` is meant for.

    Several places are settled only by a stated line number, and only when it is clearly nearer
    one of them. When the block matches exactly somewhere, the number must point there too:
    exact text and the number are the two pieces of evidence, and if they disagree, neither wins.
    """
    if len(positions) == 1:
        return positions[0]
    where = ", ".join(str(p + 1) for p in positions[:6]) + (", ..." if len(positions) > 6 else "")
    if rep.hint is not None:
        hint = rep.hint
        ranked = sorted(positions, key=lambda p: abs(p - hint))
        # Models' line numbers are often off, so the nearest place must be clearly the nearest:
        # the next one at least twice as far from the stated line.
        if 2 * abs(ranked[0] - hint) < abs(ranked[1] - hint):
            if not exact or ranked[0] in exact:
                return ranked[0]
            raise EditError(
                f"{path}: {rep.label} is ambiguous: its lines match exactly at line {exact[0] + 1}, but its header "
                f"points at line {ranked[0] + 1}, where they match only with whitespace ignored; copy the lines "
                "exactly, with more unchanged lines around the change, so that they match one place"
            )
    raise EditError(
        f"{path}: {rep.label} is ambiguous: its unchanged and removed lines match {len(positions)} places "
        f"(starting at lines {where}{', with whitespace ignored' if len(exact) < len(positions) else ''}); "
        "add more unchanged lines around the change so that it matches one place"
        # (only hunks have a header to put a number in; their label shows it)
        + (", or give the hunk its @@ -LINE header" if rep.hint is None and "@@" in rep.label else "")
    )


def _not_found(lines: list[str], rep: Replacement, path: str) -> EditError:
    where = f"{path}: {rep.label} does not match the file"
    fix = f"copy its unchanged and removed lines exactly from the current {path} (the edit may be written against another version)"
    keys = [_key(line) for line in lines]
    present = set(keys)
    for line in rep.old:
        if line.strip() and _key(line) not in present:
            near = _similar(_key(line), keys)
            shown = "; ".join(f"line {i + 1}: {lines[i].strip()!r}" for i in near)
            nearest = f"; the most similar lines of {path} are {shown}" if shown else f"; nothing similar is in {path}"
            return EditError(f"{where}: {line.strip()!r} is not in {path}{nearest}. Fix: {fix}")
    old = [_key(line) for line in rep.old]
    best = max(range(max(1, len(lines) - len(old) + 1)), key=lambda s: sum(a == b for a, b in zip(keys[s:], old)))
    region = "\n".join(f"  {best + k + 1}: {lines[best + k]}" for k in range(min(len(old), len(lines) - best, 8)))
    return EditError(
        f"{where}: each of its lines is in {path}, but not together in this order; the closest region is "
        f"lines {best + 1}-{best + len(old)}:\n{region}\nFix: {fix}"
    )


def _similar(key: str, keys: list[str], n: int = 3) -> list[int]:
    """Indices of the (at most ``n``) lines most like ``key``, for error messages.

    A line is also compared by its start, so that ``lr = 1e-3`` finds ``lr = 3e-4  # peak ...``.
    """
    def score(other: str) -> float:
        whole = difflib.SequenceMatcher(None, key, other, autojunk=False).ratio()
        start = difflib.SequenceMatcher(None, key, other[: len(key)], autojunk=False).ratio()
        return max(whole, start)

    scored = sorted(((score(k), i) for i, k in enumerate(keys) if k), key=lambda s: (-s[0], s[1]))
    return [i for ratio, i in scored[:n] if ratio >= 0.6]


@dataclass(frozen=True)
class _Indent:
    """How a file indents: with tabs or spaces, and how many columns one level is."""

    tabs: bool
    unit: int

    @staticmethod
    def of(lines: list[str]) -> _Indent:
        tabs = sum(line.startswith("\t") for line in lines) > sum(line.startswith(" ") for line in lines)
        steps: Counter[int] = Counter()
        prev = ""
        for line in lines:
            if line.strip():
                if prev.rstrip().endswith(":") and not tabs:
                    step = _columns(line, 4) - _columns(prev, 4)
                    if step > 0:
                        steps[step] += 1
                prev = line
        return _Indent(tabs, steps.most_common(1)[0][0] if steps else 4)

    def render(self, columns: int) -> str:
        return "\t" * (columns // self.unit) + " " * (columns % self.unit) if self.tabs else " " * columns


def _columns(line: str, tab: int) -> int:
    """Width of a line's indentation, a tab counting as one indentation level of ``tab`` columns."""
    width = 0
    for c in line:
        if c == " ":
            width += 1
        elif c == "\t":
            width += tab
        else:
            break
    return width


def _render(found: list[str], rep: Replacement, style: _Indent, path: str) -> list[str]:
    """The lines that replace ``found`` (the file's lines that matched ``rep.old``)."""
    if found == rep.old:
        return rep.new
    shifts = {_columns(f, style.unit) - _columns(o, style.unit) for f, o in zip(found, rep.old) if o.strip()}
    if len(shifts) != 1:
        raise EditError(
            f"{path}: {rep.label} matches the file only if whitespace is ignored, and its lines are indented "
            f"inconsistently with the file (by {sorted(shifts)} columns on different lines); copy the lines "
            "with the file's indentation"
        )
    shift = shifts.pop()
    out: list[str] = []
    i = 0  # the file line that the next old (" " or "-") operation stands for
    for tag, text in rep.ops:
        if tag == "+":
            out.append(_reindent(text, shift, style, rep, path))
            continue
        if tag == " ":
            out.append(found[i])
        i += 1
    return out


def _reindent(text: str, shift: int, style: _Indent, rep: Replacement, path: str) -> str:
    if not text.strip():
        return ""
    columns = _columns(text, style.unit) + shift
    if columns < 0:
        raise EditError(
            f"{path}: {rep.label}: the new line {text.strip()!r} would be indented less than the margin once "
            "the block is moved to the file's indentation; copy the lines with the file's indentation"
        )
    return style.render(columns) + text.lstrip(" \t").rstrip()


__all__ = ["EditError", "Replacement", "Tag", "apply_replacements", "from_search_replace"]
