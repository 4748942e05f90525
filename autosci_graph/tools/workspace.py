"""Experiment workspaces: a private copy of the task folder, with a change's diff applied.

The user's task folder is only ever read. Each run gets a copy (minus the task's excluded paths,
version-control folders and caches), and a diff may only edit files the task declares editable:
every path is checked here, before anything is written, against absolute paths, ``..``
components, symbolic links and files outside ``task.editable``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from autosci_graph.task import ResearchTask
from autosci_graph.tools.diffs import DiffError, FilePatch, apply_patch, parse_diff

_ALWAYS_SKIPPED = {".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ipynb_checkpoints"}


def make_workspace(task: ResearchTask, dest: Path, *, skip: Iterable[Path] = ()) -> Path:
    """Copy the task folder to ``dest`` (which must not exist) and return it.

    ``skip`` lists absolute paths never copied, e.g. a work folder that lies inside the task folder.
    """
    root = task.root.resolve()
    excluded = {PurePosixPath(p).as_posix().strip("/") for p in task.workspace_excludes()}
    skipped = {Path(p).resolve() for p in skip}

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        rel_dir = here.resolve().relative_to(root) if here.resolve() != root else Path()
        out = set()
        for name in names:
            rel = (rel_dir / name).as_posix()
            if name in _ALWAYS_SKIPPED or rel in excluded or (here / name).resolve() in skipped:
                out.add(name)
        return out

    # symlinks=True: links are copied as links, never followed, so a link cannot pull in (or,
    # through a diff, let a run write to) something outside the task folder.
    shutil.copytree(root, dest, symlinks=True, ignore=ignore)
    return dest


def _normalize(raw: str, editable: set[str]) -> str:
    """The editable path a diff header names, accepting git's ``a/``/``b/`` prefixes."""
    if raw == "/dev/null":
        raise DiffError("creating or deleting files is not allowed; a diff may only edit existing editable files")
    if "\\" in raw or "\0" in raw:
        raise DiffError(f"path {raw!r} is not a plain relative path")
    p = PurePosixPath(raw)
    if p.is_absolute() or raw.startswith("~"):
        raise DiffError(f"path {raw!r} is absolute; diffs may only touch files inside the workspace")
    if ".." in p.parts:
        raise DiffError(f"path {raw!r} escapes the workspace ('..')")
    candidates = [p.as_posix()]
    if len(p.parts) > 1 and p.parts[0] in ("a", "b"):
        candidates.append(PurePosixPath(*p.parts[1:]).as_posix())
    for c in candidates:
        if c in editable:
            return c
    allowed = ", ".join(sorted(editable)) or "none"
    raise DiffError(f"path {raw!r} is not an editable file of this task (editable: {allowed})")


def _safe_target(workspace: Path, rel: str) -> Path:
    """The file to patch, refusing symbolic links anywhere on the way and anything outside."""
    current = workspace
    for part in PurePosixPath(rel).parts:
        current = current / part
        if current.is_symlink():
            raise DiffError(f"{rel}: {current.relative_to(workspace)} is a symbolic link; refusing to patch through it")
    resolved = current.resolve()
    if not resolved.is_relative_to(workspace.resolve()):
        raise DiffError(f"{rel}: resolves outside the workspace")
    if not resolved.is_file():
        raise DiffError(f"{rel}: no such file in the workspace")
    return current


def check_diff(diff: str, editable: Sequence[str]) -> list[tuple[str, FilePatch]]:
    """Parse ``diff`` and check every path; return (editable path, patch) pairs.

    Raises :class:`~autosci_graph.tools.diffs.DiffError` naming the first offending path.
    """
    allowed = {PurePosixPath(e).as_posix() for e in editable}
    checked: list[tuple[str, FilePatch]] = []
    seen: set[str] = set()
    for patch in parse_diff(diff):
        old = _normalize(patch.old_path, allowed)
        new = _normalize(patch.new_path, allowed)
        if old != new:
            raise DiffError(f"diff renames {old!r} to {new!r}; only in-place edits are allowed")
        if new in seen:
            raise DiffError(f"diff patches {new!r} twice; merge its hunks into one section")
        seen.add(new)
        checked.append((new, patch))
    return checked


def apply_diff(workspace: Path, diff: str, editable: Sequence[str]) -> list[str]:
    """Apply ``diff`` to the workspace, all files or none; return the edited paths.

    Raises :class:`~autosci_graph.tools.diffs.DiffError` when it touches a path it may not or a
    hunk does not apply. Nothing is written unless every file patches cleanly.
    """
    new_texts: dict[Path, str] = {}
    for rel, patch in check_diff(diff, editable):
        target = _safe_target(workspace, rel)
        # surrogateescape: a file with stray bytes still round-trips unchanged outside the hunks.
        original = target.read_bytes().decode("utf-8", errors="surrogateescape")
        new_texts[target] = apply_patch(original, patch)
    for target, text in new_texts.items():
        tmp = target.with_name(target.name + ".autosci-tmp")
        tmp.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        os.chmod(tmp, target.stat().st_mode)
        tmp.replace(target)
    return [str(PurePosixPath(p.relative_to(workspace))) for p in new_texts]


__all__ = ["DiffError", "apply_diff", "check_diff", "make_workspace"]
