"""The champion as a code state: the task's editable files with every accepted change applied.

A champion's ``diff`` is the full change from the original task files, canonical (one unified
diff, see :func:`~autosci_graph.tools.patches.unified_diff`). A proposal's code change is an
*increment* written against the champion's files, in any format models write (unified diff,
search/replace blocks); :func:`code_stack` applies it tolerantly to the champion's files and
returns the new full change, so accepted changes compose instead of replacing each other.
"""

from __future__ import annotations

from collections.abc import Mapping

from autosci_graph.lab.changes import Stack
from autosci_graph.task import ResearchTask
from autosci_graph.tools.diffs import apply_patch
from autosci_graph.tools.patches import apply_edit, unified_diff
from autosci_graph.tools.workspace import check_diff


def original_files(task: ResearchTask) -> dict[str, str]:
    """The task's editable files as shipped (read-only)."""
    out: dict[str, str] = {}
    for rel in task.editable:
        path = task.root / rel
        out[rel] = path.read_bytes().decode("utf-8", errors="surrogateescape")
    return out


def files_at(task: ResearchTask, diff: str | None, original: Mapping[str, str] | None = None) -> dict[str, str]:
    """The editable files with the canonical full change ``diff`` applied (exactly, no fuzz)."""
    files = dict(original if original is not None else original_files(task))
    if diff and diff.strip():
        for rel, patch in check_diff(diff, task.editable):
            files[rel] = apply_patch(files[rel], patch)
    return files


def code_stack(task: ResearchTask) -> Stack:
    """``stack(champion_diff, increment)`` for this task: the full change after the increment."""

    def stack(champion_diff: str | None, increment: str) -> str:
        original = original_files(task)
        current = files_at(task, champion_diff, original)
        return unified_diff(original, {**current, **apply_edit(current, increment, task.editable)})

    return stack
