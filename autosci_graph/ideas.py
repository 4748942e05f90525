"""Ideas: literature-grounded code changes a task ships for scientists to try.

A task folder may hold ``ideas/``, one unified diff per idea against the task's *original*
editable files, each with a short header::

    # description: RMSNorm instead of LayerNorm (Zhang & Sennrich, 2019)
    # axis: norm
    --- a/train.py
    +++ b/train.py
    @@ -101,1 +101,1 @@
    -        self.ln1 = nn.LayerNorm(n_embd)
    +        self.ln1 = nn.RMSNorm(n_embd)

The header is every line before the first ``--- `` line. ``# description:`` (one line, cite the
source) and ``# axis:`` (a tag of letters, digits and ``_``) are required; any other ``#`` line,
such as ``# reference: arXiv:1910.07467``, is a comment. Ideas that share an axis are alternatives of one another
(two activations, two schedules); ideas on different axes are meant to compose, so a task's
ideas should touch different lines of the file where they can.

Loading checks everything a run would otherwise discover late: the header, that the body is a
unified diff of editable files only, and that it applies to the original text. Nothing is written.

Example::

    ideas = load_ideas(task.root, task.editable)
    change = Change(diff=ideas[0].diff, description=ideas[0].description)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path


from autosci_graph.errors import TaskError
from autosci_graph.state import CodeIdea
from autosci_graph.tools.diffs import DiffError, apply_patch
from autosci_graph.tools.workspace import check_diff

IDEAS_DIR = "ideas"
_AXIS = r"^[A-Za-z0-9_]+$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_FIELD = re.compile(r"^#\s*([A-Za-z_]+)\s*:\s*(.*?)\s*$")
_KEYS = ("description", "axis")


class Idea(CodeIdea):
    """One shipped code change: a unified diff of editable files with what it is and its axis."""

    def apply_to(self, texts: Mapping[str, str], editable: Sequence[str] | None = None) -> dict[str, str]:
        """``texts`` (path -> file text) with this idea's diff applied; untouched files unchanged.

        Pure: nothing is read or written. Apply a second idea to the result to compose them.
        Raises :class:`~autosci_graph.tools.diffs.DiffError` when a hunk does not apply or the diff
        touches a file that ``editable`` (default: ``self.files``) does not list.
        """
        out = dict(texts)
        for rel, patch in check_diff(self.diff, editable if editable is not None else self.files):
            if rel not in out:
                raise DiffError(f"idea {self.name!r} patches {rel!r}, which is not among the given files")
            out[rel] = apply_patch(out[rel], patch)
        return out


def _split_header(path: Path, text: str) -> tuple[dict[str, str], str]:
    """The ``# key: value`` fields before the first ``--- `` line, and the diff from there on."""
    lines = text.replace("\r\n", "\n").split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("--- ")), None)
    if start is None:
        raise TaskError(
            f"{path}: not a diff (no '--- a/FILE' line); fix: after the '# description:' and "
            "'# axis:' lines, paste a unified diff against the original file (git diff or diff -u)"
        )
    fields: dict[str, str] = {}
    for number, line in enumerate(lines[:start], start=1):
        m = _FIELD.match(line)
        if not m:
            continue  # a comment, or a preamble such as 'diff --git' that parse_diff skips
        key, value = m.group(1).lower(), m.group(2)
        if key not in _KEYS:
            continue  # e.g. '# reference: arXiv:1910.07467'; a misspelt required key is caught below
        if key in fields:
            raise TaskError(f"{path}: line {number}: '# {key}:' given twice; fix: keep one")
        fields[key] = value
    return fields, "\n".join(lines[start:])


def _load_one(path: Path, root: Path, editable: Sequence[str]) -> Idea:
    name = path.stem
    if not re.match(_NAME, name):
        raise TaskError(f"{path}: idea name {name!r} must be letters, digits, '_' and '-'; fix: rename the file")
    fields, diff = _split_header(path, path.read_text(encoding="utf-8", errors="surrogateescape"))
    for key, example in (("description", "RMSNorm instead of LayerNorm (Zhang & Sennrich, 2019)"), ("axis", "norm")):
        if not fields.get(key):
            raise TaskError(f"{path}: no '# {key}:' line; fix: add one before the diff, e.g. '# {key}: {example}'")
    axis = fields["axis"]
    if not re.match(_AXIS, axis):
        raise TaskError(f"{path}: axis {axis!r} is not a tag; fix: use letters, digits and '_' only, e.g. '# axis: norm'")
    try:
        patches = check_diff(diff, editable)
    except DiffError as exc:
        raise TaskError(
            f"{path}: {exc}; fix: paste a unified diff (git diff, diff -u) that only edits the task's "
            f"editable files ({', '.join(editable) or 'none'})"
        ) from None
    originals: dict[str, str] = {}
    for rel, patch in patches:
        source = root / rel
        if not source.is_file():
            raise TaskError(f"{path}: patches {rel!r}, which does not exist in {root}; fix: diff against the task's files")
        originals[rel] = source.read_bytes().decode("utf-8", errors="surrogateescape")
        try:
            apply_patch(originals[rel], patch)
        except DiffError as exc:
            raise TaskError(f"{path}: does not apply to the original {rel} ({exc}); fix: regenerate it against the unmodified {rel}") from None
    return Idea(name=name, description=fields["description"], axis=axis, diff=diff, files=[rel for rel, _ in patches])


def load_ideas(root: Path, editable: Sequence[str]) -> list[Idea]:
    """The ideas in ``root/ideas/*.diff``, sorted by name; ``[]`` when the folder does not exist.

    Args:
        root: the task folder (``task.root``).
        editable: the files a diff may touch (``task.editable``).

    Raises :class:`~autosci_graph.errors.TaskError` naming the file, what is wrong and the fix for
    a missing or malformed header, a body that is not a diff, a diff touching a file that is not
    editable, or one that does not apply to the original file.
    """
    folder = Path(root) / IDEAS_DIR
    if not folder.is_dir():
        return []
    files = sorted((p for p in folder.glob("*.diff") if p.is_file()), key=lambda p: p.stem)
    return [_load_one(p, Path(root), editable) for p in files]


__all__ = ["IDEAS_DIR", "Idea", "load_ideas"]
