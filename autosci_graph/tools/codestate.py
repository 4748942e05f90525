"""The champion as a code state: the task's editable files with every accepted change applied.

A champion's ``diff`` is the full change from the original task files, canonical (one unified
diff, see :func:`~autosci_graph.tools.patches.unified_diff`). A proposal's code change is an
*increment* written against the champion's files, in any format models write (unified diff,
search/replace blocks); :func:`code_stack` applies it tolerantly to the champion's files and
returns the new full change, so accepted changes compose instead of replacing each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from autosci_graph.lab.changes import Stack
from autosci_graph.state import Change
from autosci_graph.task import ResearchTask
from autosci_graph.tools.diffs import apply_patch
from autosci_graph.tools.patches import apply_edit, unified_diff
from autosci_graph.tools.workspace import check_diff


def _read(root: Path, editable: Sequence[str]) -> dict[str, str]:
    return {rel: (root / rel).read_bytes().decode("utf-8", errors="surrogateescape") for rel in editable}


def original_files(task: ResearchTask) -> dict[str, str]:
    """The task's editable files as shipped (read-only)."""
    return _read(task.root, task.editable)


def files_at_root(root: Path, editable: Sequence[str], diff: str | None, original: Mapping[str, str] | None = None) -> dict[str, str]:
    """The editable files under ``root`` with the canonical full change ``diff`` applied (exactly)."""
    files = dict(original if original is not None else _read(root, editable))
    if diff and diff.strip():
        for rel, patch in check_diff(diff, editable):
            files[rel] = apply_patch(files[rel], patch)
    return files


def files_at(task: ResearchTask, diff: str | None, original: Mapping[str, str] | None = None) -> dict[str, str]:
    """The editable files with the canonical full change ``diff`` applied (exactly, no fuzz)."""
    return files_at_root(task.root, task.editable, diff, original)


def code_stack(task: ResearchTask) -> Stack:
    """``stack(champion_diff, increment)`` for this task: the full change after the increment."""

    def stack(champion_diff: str | None, increment: str) -> str:
        original = original_files(task)
        current = files_at(task, champion_diff, original)
        return unified_diff(original, {**current, **apply_edit(current, increment, task.editable)})

    return stack


def state_hash(task: ResearchTask, change: Change) -> str:
    """A content hash of what an experiment ran: the editable files at its code state and its full
    knob configuration (12 hex digits, like a short git commit). Equal hashes, equal runs."""
    files = files_at(task, change.diff) if task.editable else {}
    payload = json.dumps({"files": files, "knobs": {**task.default_config(), **change.knobs}}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8", errors="surrogateescape")).hexdigest()[:12]
