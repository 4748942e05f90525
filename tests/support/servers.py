"""Real servers for the cluster tests, on 127.0.0.1, started and stopped by PID.

* :class:`RayCluster`: a head (``ray start --head --block``) and worker nodes (``ray start
  --address``), each a foreground process in its own session. Stopping walks the process tree
  (raylet, Ray workers, experiments) and kills exactly it: never ``ray stop``, which would stop every
  Ray process on the machine, other sessions' included.
* :class:`Postgres`: Debian's PostgreSQL (``initdb``/``postgres``) in a fresh folder, trust
  authentication on loopback; as root it runs as the ``postgres`` user (PostgreSQL refuses root),
  otherwise as the current user.
* :class:`ChromaServer`: ``chroma run`` on a fresh folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (by parent pid), read from ``/proc`` now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def kill_tree(root: int) -> None:
    """SIGKILL ``root`` and all its descendants at once (a machine losing power)."""
    for pid in descendants(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


class RayCluster:
    """A Ray head on loopback plus worker nodes; ``address`` is what clients give ``ray.init``."""

    def __init__(self, head_cpus: int = 2, head_gpus: int = 0, env: dict[str, str] | None = None) -> None:
        """``head_gpus`` declares GPUs to Ray that the machine need not have: Ray then schedules
        ``num_gpus=1`` tasks there and sets ``CUDA_VISIBLE_DEVICES`` as on a GPU node. ``env`` is
        added to the nodes' environment (what a node's own machine would have set)."""
        # Ray's socket paths must stay under 107 bytes: a short temporary folder.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="asray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Nodes keep unpacked task folders and workspaces in the cluster's folder, removed at stop.
        self.env = {**os.environ, **RAY_ENV, "AUTOSCI_RAY_SCRATCH": str(self.temp_dir / "scratch"),
                    **(env or {})}
        self.head = self._start(["--head", f"--port={self.port}", f"--num-cpus={head_cpus}", f"--num-gpus={head_gpus}", "--include-dashboard=false",
                                 f"--temp-dir={self.temp_dir}"], "head")
        wait_port(self.port, 60, self.head, "ray head")
        self.workers: list[subprocess.Popen[bytes]] = []

    def _start(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        ray = str(Path(sys.executable).parent / "ray")
        log = open(self.temp_dir / f"{name}.log", "wb")
        return subprocess.Popen([ray, "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args],
                                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def add_worker(self, cpus: int = 1, timeout: float = 60) -> subprocess.Popen[bytes]:
        """Start a worker node and wait until the cluster counts its CPUs."""
        before = self.alive_nodes()
        proc = self._start([f"--address={self.address}", f"--num-cpus={cpus}"], f"worker{len(self.workers)}")
        self.workers.append(proc)
        deadline = time.monotonic() + timeout
        while self.alive_nodes() <= before:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray worker node did not join (see {self.temp_dir})")
            time.sleep(0.3)
        return proc

    def alive_nodes(self) -> int:
        out = subprocess.run([str(Path(sys.executable).parent / "python"), "-c",
                              "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
                              "print(sum(1 for n in ray.nodes() if n['Alive']))", self.address],
                             env=self.env, capture_output=True, text=True, timeout=60)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """The worker node's machine dies: every process of it, experiments included, at once."""
        kill_tree(proc.pid)
        _reap(proc)

    def stop(self) -> None:
        for proc in [*self.workers, self.head]:
            if proc.poll() is None:
                kill_tree(proc.pid)
            _reap(proc)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class Postgres:
    """A throw-away PostgreSQL cluster on a free loopback port (as ``postgres`` when we are root)."""

    def __init__(self, user: str = "postgres") -> None:
        bindir = Path("/usr/lib/postgresql")
        versions = sorted(bindir.glob("*/bin/initdb"))
        if not versions:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = versions[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="autosci-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        ids: dict[str, int] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam(user)
            ids = {"user": pw.pw_uid, "group": pw.pw_gid}
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, cwd=self.dir, **ids)  # type: ignore[call-overload]
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=open(self.dir / "postgres.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True,
            cwd=self.dir, **ids,  # type: ignore[call-overload]
        )
        wait_port(self.port, 30, self.proc, "postgres")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)  # "fast shutdown"
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill_tree(self.proc.pid)
                _reap(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class ChromaServer:
    """``chroma run`` on a fresh folder and a free loopback port."""

    def __init__(self, path: Path) -> None:
        self.port = free_port()
        chroma = str(Path(sys.executable).parent / "chroma")
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        self.proc = subprocess.Popen([chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=open(path.parent / "chroma.log", "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        wait_port(self.port, 60, self.proc, "chroma run")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill_tree(self.proc.pid)
                _reap(self.proc)
