"""Containment with real processes and real bubblewrap: a script that tries to escape, a fork bomb
and a memory hog (tests/integration/sandbox/).

The lab is given a temporary ``$HOME`` with a planted file, planted secrets in innocently named
variables, a port listening on 127.0.0.1 and a path outside the workspace. Inside the sandbox each
escape fails, separately asserted, while every run still finishes ``ok`` with its metric; with
``--sandbox none`` the same script gets through, which shows these tests can fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autosci_graph.state import Change, RunRequest, RunResult
from autosci_graph.task import CategoricalKnob, FloatKnob, Limits, Metric, ResearchTask
from autosci_graph.tools.limits import process_cap_enforced
from autosci_graph.tools.local import LocalExecutor
from tests.support.processes import wait_gone

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap); CI installs it"),
]

HERE = Path(__file__).parent
#: Secrets with innocent names, and inside URLs, planted in the lab's environment.
PLANTED = {
    "NOTES": "planted-notes-4f1c9a",
    "BUILD_LABEL": "planted-label-77e2d0",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/planted-hook-5b8e",
    "METRICS_ENDPOINT": "http://10.20.30.40:9090/planted-metrics-c3d1",
    "DASHBOARD": "https://grafana.corp.internal/d/planted-dash-91aa",
    "DATABASE": "postgres://admin:planted-pw-0e6f@db.internal:5432/prod",
}
HOME_SECRET = "planted-home-secret-d2b7"
ABSOLUTE_SECRET = "planted-absolute-secret-8a41"


class Listener:
    """A TCP port on 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(1024))
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@dataclass
class Setup:
    """The bait: a task, a home, a port, a forbidden path, and the environment to launch with."""

    tmp: Path
    task_dir: Path
    home: Path
    outside: Path
    listener: Listener
    env: dict[str, str] = field(default_factory=dict)


def _setup(tmp: Path) -> Setup:
    home = tmp / "home"
    home.mkdir()
    (home / ".netrc").write_text(HOME_SECRET)
    secret = tmp / "elsewhere" / "credentials.txt"
    secret.parent.mkdir()
    secret.write_text(ABSOLUTE_SECRET)
    outside = tmp / "outside"
    outside.mkdir()
    task_dir = tmp / "task"
    task_dir.mkdir()
    shutil.copy(HERE / "sandbox" / "escape.py", task_dir / "train.py")
    listener = Listener()
    (task_dir / "targets.json").write_text(json.dumps({
        "secret_file": str(secret), "secret_name": ".netrc", "port": listener.port, "outside_file": str(outside / "escaped.txt"),
    }))
    (task_dir / "task.toml").write_text(
        'name = "escape"\ncommand = ["{python}", "train.py", "--seed={seed}"]\neditable = ["train.py"]\nseeds = [0, 1]\n'
        'timeout = 30\n\n[metric]\nname = "loss"\ndirection = "minimize"\n\n'
        '[knobs.lr]\ntype = "float"\nlow = 1e-4\nhigh = 1.0\nlog = true\ndefault = 1e-3\n'
    )
    env = {**os.environ, **PLANTED, "HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return Setup(tmp=tmp, task_dir=task_dir, home=home, outside=outside, listener=listener, env=env)


def _attempts(result: RunResult) -> dict[str, str]:
    log = Path(result.log_path or "").read_text()
    line = next(ln for ln in log.splitlines() if ln.startswith("ATTEMPTS "))
    return json.loads(line.removeprefix("ATTEMPTS "))


def _files_containing(folder: Path, values: list[str]) -> dict[str, list[str]]:
    """Which of ``values`` appear in which files under ``folder`` (raw bytes, so SQLite counts)."""
    found: dict[str, list[str]] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits = [v for v in values if v.encode() in data]
            if hits:
                found[str(path.relative_to(folder))] = hits
    return found


@dataclass
class LabRun:
    setup: Setup
    run_dir: Path
    memory_dir: Path
    proc: subprocess.CompletedProcess[str]
    results: list[RunResult]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabRun]:
    """A sandboxed lab run (the default) of the escaping script: 4 experiments, with memory."""
    s = _setup(tmp_path_factory.mktemp("sandboxed"))
    run_dir, memory_dir = s.tmp / "run", s.tmp / "memory"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "autosci_graph.cli", "run", str(s.task_dir), "--teams", "1", "--slots", "2",
             "--max-experiments", "4", "--stop-after-no-keep", "0", "--run-dir", str(run_dir), "--memory-path", str(memory_dir)],
            capture_output=True, text=True, cwd=s.tmp, env=s.env, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = [RunResult.model_validate_json(p.read_bytes()) for p in sorted((run_dir / "experiments").glob("*/result.json"))]
        yield LabRun(s, run_dir, memory_dir, proc, results)
    finally:
        s.listener.close()


def test_every_run_finishes_ok_with_its_metric(lab: LabRun) -> None:
    assert len(lab.results) >= 2
    for r in lab.results:
        assert r.status == "ok" and r.metric is not None, (r.experiment_id, r.error)
        assert r.provenance is not None and r.provenance.sandbox == "bwrap" and r.provenance.network is False


def test_the_planted_file_is_unreadable_by_absolute_path(lab: LabRun) -> None:
    for r in lab.results:
        assert _attempts(r)["read_absolute"].startswith("refused: FileNotFoundError")


def test_the_planted_file_is_unreadable_through_home(lab: LabRun) -> None:
    for r in lab.results:
        assert _attempts(r)["read_home"].startswith("refused: FileNotFoundError")  # ~ is an empty tmpfs inside


def test_no_connection_reaches_loopback(lab: LabRun) -> None:
    for r in lab.results:
        assert _attempts(r)["connect_loopback"].startswith("refused:")
    assert lab.setup.listener.received == []


def test_nothing_is_written_outside_the_workspace(lab: LabRun) -> None:
    for r in lab.results:
        assert _attempts(r)["write_outside"].startswith("refused:")
    assert list(lab.setup.outside.iterdir()) == []
    assert sorted(p.name for p in lab.setup.task_dir.iterdir()) == ["targets.json", "task.toml", "train.py"]


def test_the_environment_holds_no_planted_value(lab: LabRun) -> None:
    for r in lab.results:
        log = Path(r.log_path or "").read_text()
        assert "ENV PATH=" in log and "ENV AUTOSCI_RUN_ID=" in log  # it did print its environment
        assert not [name for name in PLANTED if f"ENV {name}=" in log]
        assert r.provenance is not None and "PATH" in r.provenance.env_names and not set(PLANTED) & set(r.provenance.env_names)


def test_no_planted_value_anywhere_in_the_run_directory_or_the_memory(lab: LabRun) -> None:
    planted = [*PLANTED.values(), HOME_SECRET, ABSOLUTE_SECRET]
    assert (lab.run_dir / "results.tsv").is_file() and (lab.run_dir / "report.md").is_file()
    assert lab.memory_dir.is_dir() and any(lab.memory_dir.rglob("*.sqlite3"))
    assert _files_containing(lab.run_dir, planted) == {}
    assert _files_containing(lab.memory_dir, planted) == {}
    assert "sandbox: every run in bubblewrap" in (lab.run_dir / "report.md").read_text()


def test_without_the_sandbox_the_same_script_gets_through(tmp_path: Path) -> None:
    s = _setup(tmp_path)
    env = {**s.env, "WANDB_API_KEY": "planted-passed-on-purpose"}
    (s.task_dir / "task.toml").write_text((s.task_dir / "task.toml").read_text().replace('seeds =', 'pass_env = ["WANDB_API_KEY"]\nseeds ='))
    try:
        proc = subprocess.run([sys.executable, "-m", "autosci_graph.cli", "run-one", str(s.task_dir), "--sandbox", "none",
                               "--work-dir", str(tmp_path / "work")], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        r = RunResult.model_validate_json(proc.stdout)
        attempts = _attempts(r)
        assert attempts["read_absolute"] == f"ok: {ABSOLUTE_SECRET}"
        assert attempts["read_home"] == f"ok: {HOME_SECRET}"
        assert attempts["connect_loopback"] == "ok: connected" and s.listener.received == [b"hello from inside the run"]
        assert attempts["write_outside"] == "ok: written" and (s.outside / "escaped.txt").read_text() == "escaped"
        log = Path(r.log_path or "").read_text()
        assert "ENV WANDB_API_KEY=planted-passed-on-purpose" in log  # the environment check sees what passes
        assert r.provenance is not None and r.provenance.sandbox == "none"
    finally:
        s.listener.close()


def test_network_on_request_is_said_in_the_provenance(tmp_path: Path) -> None:
    s = _setup(tmp_path)
    task_toml = s.task_dir / "task.toml"
    task_toml.write_text(task_toml.read_text().replace("timeout = 30", "timeout = 30\nnetwork = true"))
    from autosci_graph.task import load_task

    try:
        with LocalExecutor(load_task(s.task_dir), tmp_path / "work", slots=1) as ex:
            r = ex.run(Change())
        assert r.status == "ok" and r.provenance is not None and r.provenance.network is True
        assert _attempts(r)["connect_loopback"] == "ok: connected"
        assert _attempts(r)["read_home"].startswith("refused:")  # the files stay hidden
    finally:
        s.listener.close()


def _caps_task(root: Path) -> ResearchTask:
    root.mkdir(parents=True)
    for name in ("fork_bomb.py", "memory_hog.py"):
        shutil.copy(HERE / "sandbox" / name, root / name)
    shutil.copy(HERE / "scripts" / "dispatch.py", root / "dispatch.py")
    shutil.copy(HERE / "scripts" / "ok.py", root / "ok.py")
    return ResearchTask(
        name="caps", root=root, command=("{python}", "dispatch.py", "--seed={seed}"), metric=Metric(name="score"),
        knobs={"script": CategoricalKnob(choices=("ok.py", "fork_bomb.py", "memory_hog.py"), default="ok.py"),
               "x": FloatKnob(low=-10, high=10, default=1.0)},
        timeout=30, limits=Limits(memory_mb=256, processes=64),
    )


@pytest.mark.skipif(not process_cap_enforced(), reason="root without a writable pids cgroup: no process cap to test")
def test_a_fork_bomb_and_a_memory_hog_are_classified_and_the_executor_goes_on(tmp_path: Path) -> None:
    with LocalExecutor(_caps_task(tmp_path / "task"), tmp_path / "work", slots=2, grace_s=1.0) as ex:
        requests = [RunRequest(experiment_id=n, change=Change(knobs={"script": f"{n}.py"})) for n in ("fork_bomb", "memory_hog")]
        bomb, hog = ex.run_many(requests)
        after = ex.run(Change(knobs={"x": 0.25}), experiment_id="after")
    assert bomb.status == "crash" and "Resource temporarily unavailable" in (bomb.error or ""), bomb.error
    assert bomb.duration_s < 15  # stopped by the cap, not by the 30 s budget
    assert hog.status == "oom" and "MemoryError" in (hog.error or ""), hog.error
    assert after.status == "ok" and after.metric == 0.25
    assert bomb.provenance is not None and bomb.provenance.limits == {"memory_mb": 256, "processes": 64}
    assert not wait_gone("fork_bomb") and not wait_gone("memory_hog")


def test_a_process_the_run_left_in_its_own_session_dies_with_the_sandbox(tmp_path: Path) -> None:
    # The run starts a sleeper in a new session (out of its process group) and exits at once.
    # Inside bubblewrap the sleeper shares the run's PID namespace: once bubblewrap's namespace
    # init is gone (which the executor waits for instead of sweeping /proc), so is the sleeper.
    from autosci_graph.tools.env import RUN_MARKER
    from autosci_graph.tools.sandbox import make_sandbox
    from tests.support.processes import marked

    marker = "stray-test@1"
    env = {"PATH": os.environ["PATH"], RUN_MARKER: marker}
    ws = tmp_path / "ws"
    ws.mkdir()
    proc = make_sandbox("bwrap").process(["sh", "-c", "setsid sleep 30 & echo started"], workspace=ws, env=env,
                                         timeout=60, log_path=tmp_path / "run.log", max_log_bytes=1 << 20)
    outcome = proc.run()
    assert outcome.returncode == 0 and "started" in (tmp_path / "run.log").read_text()
    assert outcome.ended_at - outcome.started_at < 10, "the run waited for its stray instead of ending"
    assert marked("stray-test") == []
