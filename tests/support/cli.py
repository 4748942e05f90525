"""Run the ``autosci`` command in a subprocess, as a user would, and stop helper processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def autosci(*args: str, work: Path, timeout: float = 300) -> tuple[int, Any, str]:
    """Run ``autosci ARGS`` (the console script when installed) in ``work``; return the exit
    code, the JSON it printed (or None) and its stderr."""
    script = Path(sys.executable).parent / "autosci"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "autosci_graph.cli"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=work, env=os.environ.copy(), timeout=timeout)
    try:
        payload = json.loads(proc.stdout)
    except ValueError:
        payload = None
    return proc.returncode, payload, proc.stderr


def stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """TERM a server process, KILL it if it lingers, and reap it."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
