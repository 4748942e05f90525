"""Run a task's data-preparation command once, and remember that it ran.

Preparation is cached per data folder by a marker file ``.autosci_prepared.json`` that records
the command, a fingerprint of the preparation script and the hash of the data it produced. A
file lock makes parallel callers (several executors, several test workers) wait for one
preparation instead of racing. A failed preparation is a system failure, not an experiment
result: it raises :class:`~autosci_graph.errors.DataUnavailableError` with the end of the
command's output and what to do about it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from autosci_graph.errors import DataUnavailableError
from autosci_graph.task import ResearchTask
from autosci_graph.tools.command import format_command
from autosci_graph.tools.env import allowed_env
from autosci_graph.tools.provenance import hash_folder

log = logging.getLogger(__name__)

MARKER = ".autosci_prepared.json"
LOCK = ".autosci_prepare.lock"
PREPARE_LOG = ".autosci_prepare.log"
#: Preparation may download and convert data; it gets far longer than one experiment.
PREPARE_TIMEOUT_S = 3600.0


def _recipe(task: ResearchTask) -> str:
    """Fingerprint of what preparation does: the command and the task files it names."""
    digest = hashlib.sha256(json.dumps(list(task.prepare or ())).encode())
    for arg in task.prepare or ():
        candidate = task.root / arg
        if candidate.is_file():
            digest.update(candidate.read_bytes())
    return digest.hexdigest()[:16]


def _is_prepared(data_dir: Path, recipe: str) -> bool:
    try:
        marker = json.loads((data_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("recipe") == recipe


def ensure_prepared(task: ResearchTask, data_dir: Path | None = None, final_dir: Path | None = None) -> Path:
    """Make sure the task's data is prepared; return the data folder.

    Runs ``task.prepare`` (in the task folder, with ``AUTOSCI_DATA_DIR`` and ``AUTOSCI_FINAL_DIR``
    set and the placeholders ``{python}``, ``{data_dir}``, ``{final_dir}`` filled) unless a marker
    says the same recipe already ran. Tasks without a prepare command just get an (empty) folder.
    """
    data_dir = Path(data_dir or task.default_data_dir()).expanduser().resolve()
    final_dir = Path(final_dir or task.default_final_dir()).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not task.prepare:
        return data_dir
    recipe = _recipe(task)
    if _is_prepared(data_dir, recipe):
        return data_dir
    with open(data_dir / LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be preparing right now: wait for it
        try:
            if _is_prepared(data_dir, recipe):
                return data_dir
            _run_prepare(task, data_dir, final_dir, recipe)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return data_dir


def _run_prepare(task: ResearchTask, data_dir: Path, final_dir: Path, recipe: str) -> None:
    assert task.prepare is not None
    final_dir.mkdir(parents=True, exist_ok=True)
    argv = format_command(task.prepare, python=sys.executable, data_dir=str(data_dir), final_dir=str(final_dir))
    env = allowed_env(os.environ, task.pass_env)
    env.update(task.env)
    env.update({"AUTOSCI_DATA_DIR": str(data_dir), "AUTOSCI_FINAL_DIR": str(final_dir), "PYTHONUNBUFFERED": "1"})
    log_path = data_dir / PREPARE_LOG
    log.info("preparing data for task %s: %s", task.name, " ".join(argv))
    started = time.time()
    try:
        with open(log_path, "wb") as out:
            proc = subprocess.run(argv, cwd=task.root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=PREPARE_TIMEOUT_S)
        failed = proc.returncode != 0
        why = f"exited with status {proc.returncode}"
    except subprocess.TimeoutExpired:
        failed, why = True, f"ran longer than {PREPARE_TIMEOUT_S:.0f} s"
    except OSError as exc:
        failed, why = True, f"could not start ({exc})"
    if failed:
        tail = _tail(log_path)
        raise DataUnavailableError(
            f"task {task.name}: data preparation `{' '.join(argv)}` {why}. "
            f"Last output: {tail!r}. Fix the cause above (or the network/package it needs), then run again; "
            f"the full log is {log_path}"
        )
    marker = {
        "recipe": recipe,
        "command": argv,
        "prepared_at": started,
        "seconds": round(time.time() - started, 3),
        "data_hash": hash_folder(data_dir),
    }
    tmp = data_dir / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2), encoding="utf-8")
    tmp.replace(data_dir / MARKER)
    log.info("prepared data for task %s in %.1f s (%s)", task.name, marker["seconds"], marker["data_hash"])


def _tail(path: Path, limit: int = 800) -> str:
    try:
        data = path.read_bytes()[-limit:]
    except OSError:
        return ""
    return " | ".join(line.strip() for line in data.decode("utf-8", errors="replace").splitlines() if line.strip())
