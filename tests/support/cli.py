"""Run the ``autosci`` command in a subprocess, as a user would, and stop helper processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def finished_results(run_dir: Path) -> dict[str, int]:
    """The experiments of a run directory that have a result, with the result file's mtime."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (run_dir / "experiments").glob("*/result.json")}


def kill_mid_run(proc: subprocess.Popen[Any], run_dir: Path, *, marker: str = "run.log", timeout: float = 400,
                 before_kill: Callable[[], None] | None = None, sig: signal.Signals = signal.SIGKILL,
                 exit_timeout: float = 30) -> dict[str, int]:
    """Wait until a lab process has three experiments finished and one in flight (its folder holds
    ``marker`` and no result), then send it ``sig`` (SIGKILL) and wait up to ``exit_timeout`` for it
    to end; the results finished before the signal. The process is killed and reaped whatever
    happens, so a failing test leaves no lab behind."""
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before it could be killed"
            running = [p for p in (run_dir / "experiments").glob(f"*/{marker}") if not (p.parent / "result.json").exists()]
            if len(finished_results(run_dir)) >= 3 and running:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("never saw three finished experiments and one in flight")
        if before_kill is not None:
            before_kill()
        before = finished_results(run_dir)
        proc.send_signal(sig)
        proc.wait(timeout=exit_timeout)
        return before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
