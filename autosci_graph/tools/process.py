"""Launch one run as a process tree, capture its output, and make sure all of it dies.

A run is started in its own session (so its process group can be signalled as one), with a
marker variable ``AUTOSCI_RUN_ID`` in its environment. Killing a run means: TERM to the group
and to every process carrying the marker (which finds children that started their own session
and so left the group), a grace period, then KILL to whatever is left. The same sweep runs after
a normal exit, so a run never leaves a process behind. The marker sweep reads
``/proc/<pid>/environ`` and so works on Linux; elsewhere only the process group is tracked.

Output (stdout and stderr together) goes to a log file, capped: past ``max_log_bytes`` the pipe
is still drained, so the child never blocks, but only the last ``tail_bytes`` are kept and
appended at the end, where summary blocks live.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from autosci_graph.tools.env import RUN_MARKER
from autosci_graph.tools.limits import ResourceLimits, RunLimits

log = logging.getLogger(__name__)

_PROC = Path("/proc")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class ProcessOutcome:
    """How a run's process ended."""

    #: Exit status of the main process; negative for a signal; None if it never started.
    returncode: int | None
    timed_out: bool
    #: Killed because the executor was closed (the run did not finish on its own).
    cancelled: bool
    started_at: float
    ended_at: float
    #: Bytes the run wrote, all of them, and whether the log file holds fewer.
    output_bytes: int
    truncated: bool
    #: Processes still alive after the main one ended (or after the kill), then killed.
    strays_killed: int
    #: Why the process could not start, if it could not.
    launch_error: str | None = None


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks since boot) from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after the last ")" do not.
    fields = stat[stat.rindex(b")") + 2 :].split()
    try:
        return fields[0].decode(), int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int:
    """When a process started (clock ticks since boot); 0 if unknown."""
    st = _stat(pid)
    return st[2] if st else 0


def is_running(pid: int, ticks: int | None = None) -> bool:
    """The process ``pid`` (the one that started at ``ticks``, when given) has not ended. A
    zombie has: only its parent's reaping is left (a killed Ray worker stays one until its
    raylet reaps it)."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X") and (ticks is None or st[2] == ticks)


def run_pids(pgid: int, run_id: str, since: int = 0) -> list[int]:
    """Live (non-zombie) processes of a run: in its process group, or carrying its marker.

    ``since`` (start ticks of the run's main process) skips processes older than the run, which
    cannot belong to it, without reading their environment: that keeps the sweep cheap on a
    machine with many processes. Linux only (reads ``/proc``); elsewhere returns ``[]``.
    """
    if not _PROC.is_dir():
        return []
    needle = f"{RUN_MARKER}={run_id}".encode()
    me = os.getpid()
    found: list[int] = []
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        st = _stat(pid)
        if st is None or st[0] in ("Z", "X"):  # zombies are dead already; their parent reaps them
            continue
        if st[2] < since:
            continue
        if st[1] == pgid:
            found.append(pid)
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:  # gone, or another user's process
            continue
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found


def _alive(pgid: int, run_id: str, since: int = 0) -> list[int]:
    if _PROC.is_dir():
        return run_pids(pgid, run_id, since)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    return [pgid]


def _signal_all(pgid: int, run_id: str, sig: signal.Signals, since: int = 0) -> int:
    """Send ``sig`` to the group and to every live process of the run; return how many."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    pids = run_pids(pgid, run_id, since)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    return len(pids)


def kill_tree(pgid: int, run_id: str, grace_s: float, since: int = 0) -> int:
    """TERM everything of the run, wait up to ``grace_s`` for it to go, then KILL the rest.

    Returns how many marked processes were found at the first sweep.
    """
    first = _signal_all(pgid, run_id, signal.SIGTERM, since)
    deadline = time.monotonic() + grace_s
    delay = 0.005
    while time.monotonic() < deadline:
        if not _alive(pgid, run_id, since):
            return first
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    _signal_all(pgid, run_id, signal.SIGKILL, since)
    # KILL cannot be ignored; give the kernel a moment so callers can rely on "nothing alive".
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and _alive(pgid, run_id, since):
        time.sleep(0.02)
    return first


def _drain(pgid: int, run_id: str, since: int, budget_s: float = 0.05) -> None:
    """Give a wrapper's own helpers a moment to exit by themselves: bubblewrap reports the
    command's exit status before its init process in the sandbox has finished exiting, and
    sweeping that as a stray would cost a TERM and a grace wait on every run."""
    deadline = time.monotonic() + budget_s
    while _alive(pgid, run_id, since) and time.monotonic() < deadline:
        time.sleep(0.001)


def _namespace_init(read_fd: int, budget_s: float = 5.0) -> tuple[int, int] | None:
    """The pid and start ticks of the sandbox's PID-namespace init, from bubblewrap's
    ``--info-fd`` report (written, then closed, once the sandbox is set up); ``None`` if
    bubblewrap exited or said nothing within ``budget_s``."""
    data = b""
    deadline = time.monotonic() + budget_s
    try:
        while (left := deadline - time.monotonic()) > 0 and select.select([read_fd], [], [], left)[0]:
            chunk = os.read(read_fd, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_fd)
    try:
        pid = int(json.loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None
    return pid, start_ticks(pid)


def _init_gone(init: tuple[int, int], budget_s: float = 0.05) -> bool:
    """Wait up to ``budget_s`` for the namespace init to have exited. When it has, the kernel
    has already killed and reaped every other process in its PID namespace (an init's exit waits
    for them), so nothing of the run is left and no ``/proc`` sweep is needed."""
    pid, ticks = init
    deadline = time.monotonic() + budget_s
    while True:
        if not is_running(pid, ticks):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.0005)


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking the kernel to KILL the child when its parent thread dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def apply() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)

    return apply


def _preexec(caps: RunLimits | None, die_with_parent: bool) -> Callable[[], None] | None:
    """The child's pre-exec hook: the resource caps, then the parent-death signal, as asked."""
    hooks = [h for h in (caps.preexec() if caps is not None else None,
                         _parent_death_signal() if die_with_parent else None) if h is not None]
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]

    def apply() -> None:
        for hook in hooks:
            hook()

    return apply


class _LogPump(threading.Thread):
    """Drain the pipe into the log file: the head up to the cap, then a rolling tail."""

    def __init__(self, fd: int, log_path: Path, max_bytes: int, tail_bytes: int) -> None:
        super().__init__(name=f"log-pump-{log_path.parent.name}", daemon=True)
        self.fd = fd
        self.log_path = log_path
        self.max_bytes = max_bytes
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.tail_bytes = tail_bytes
        self.total = 0

    def run(self) -> None:
        written = 0
        with open(self.log_path, "wb") as out:
            while True:
                try:
                    chunk = os.read(self.fd, _CHUNK)
                except OSError:
                    break
                if not chunk:
                    break
                self.total += len(chunk)
                room = self.max_bytes - written
                if room > 0:
                    out.write(chunk[:room])
                    written += min(room, len(chunk))
                    chunk = chunk[room:]
                if chunk:  # past the cap: keep only a bounded tail in memory
                    self.tail.append(chunk)
                    self.tail_len += len(chunk)
                    while self.tail and self.tail_len - len(self.tail[0]) >= self.tail_bytes:
                        self.tail_len -= len(self.tail.popleft())
            if self.total > written:
                tail = b"".join(self.tail)[-self.tail_bytes :]
                dropped = self.total - written - len(tail)
                if dropped > 0:
                    out.write(f"\n[autosci: {dropped} bytes of output dropped here; the log keeps the first {written} and the last {len(tail)}]\n".encode())
                out.write(tail)
        try:
            os.close(self.fd)
        except OSError:
            pass

    @property
    def truncated(self) -> bool:
        return self.total > self.max_bytes + self.tail_bytes


class ManagedProcess:
    """One run's process tree. ``start`` then ``wait``; ``cancel`` from any thread kills it."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        log_path: Path,
        max_log_bytes: int,
        grace_s: float = 5.0,
        tail_bytes: int = 256 * 1024,
        limits: ResourceLimits | None = None,
        wrapped: bool = False,
        die_with_parent: bool = False,
    ) -> None:
        """``limits`` caps the run's memory and processes (:mod:`autosci_graph.tools.limits`);
        ``wrapped`` says the main process is bubblewrap (with ``--unshare-pid``): it reports a
        signal death of the command as ``128 + signal``, which the outcome gives back as
        ``-signal``, and it is asked for its namespace init's pid (``--info-fd``), whose exit
        proves the run gone without sweeping ``/proc``.
        ``die_with_parent`` has the kernel KILL the main process when the thread that started it
        dies (Linux ``PR_SET_PDEATHSIG``): a Ray worker killed by ``ray.cancel(force=True)`` or by
        its driver's death cannot run its timer and sweep any more, so its run must not outlive it."""
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self.run_id = self.env[RUN_MARKER]
        self.timeout = timeout
        self.log_path = log_path
        self.max_log_bytes = max_log_bytes
        self.grace_s = grace_s
        self.tail_bytes = min(tail_bytes, max(1024, max_log_bytes))
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reason: str | None = None  # "timeout" or "cancelled" once we decide to kill
        self._killer: threading.Thread | None = None
        self._since = 0  # start ticks of the main process: older processes are not the run's
        self.limits = limits
        self.wrapped = wrapped
        self.die_with_parent = die_with_parent

    def cancel(self) -> None:
        """Kill the run because the executor is closing (safe to call at any time)."""
        self._kill("cancelled")

    def _kill(self, reason: str) -> None:
        with self._lock:
            if self._reason is not None:
                return
            self._reason = reason
            proc = self._proc
        if proc is None:
            return
        log.info("killing run %s (%s)", self.run_id, reason)
        # A separate thread, so a timer or close() never blocks for the grace period.
        self._killer = threading.Thread(target=kill_tree, args=(proc.pid, self.run_id, self.grace_s, self._since), daemon=True)
        self._killer.start()

    def run(self) -> ProcessOutcome:
        """Start the process, block until it and all its descendants are gone."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.time()
        read_fd, write_fd = os.pipe()
        caps = RunLimits(self.limits, self.run_id) if self.limits is not None else None
        argv, info = self.argv, None
        if self.wrapped:
            # bubblewrap reports its namespace init's pid: its exit ends every process of the run.
            info = os.pipe()
            argv = [self.argv[0], "--info-fd", str(info[1]), *self.argv[1:]]
        try:
            with self._lock:
                if self._reason == "cancelled":
                    raise OSError("the executor was closed before the run started")
                self._proc = subprocess.Popen(
                    argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=write_fd,
                    stderr=write_fd,
                    start_new_session=True,  # its own process group, killable as one
                    close_fds=True,
                    preexec_fn=_preexec(caps, self.die_with_parent),
                    pass_fds=(info[1],) if info else (),
                )
        except (OSError, subprocess.SubprocessError) as exc:
            if caps is not None:
                caps.close()
            for fd in (read_fd, write_fd, *(info or ())):
                os.close(fd)
            self.log_path.write_text(f"[autosci: could not start {self.argv!r}: {exc}]\n", encoding="utf-8")
            return ProcessOutcome(None, False, self._reason == "cancelled", started, time.time(), 0, False, 0, str(exc))
        os.close(write_fd)  # only the child holds the write end now: EOF means every writer is gone
        self._since = start_ticks(self._proc.pid)
        ns_init = None
        if info is not None:
            os.close(info[1])
            ns_init = _namespace_init(info[0])
        pump = _LogPump(read_fd, self.log_path, self.max_log_bytes, self.tail_bytes)
        pump.start()
        timer = threading.Timer(self.timeout, self._kill, args=("timeout",))
        timer.daemon = True
        timer.start()
        proc = self._proc
        try:
            returncode = proc.wait()
        finally:
            timer.cancel()
        # The main process is gone; anything of the run still alive is a stray. Kill it.
        if self._killer is not None:
            self._killer.join()
        if ns_init is not None and _init_gone(ns_init):
            strays = 0  # the namespace is empty: nothing of the run can be alive
        else:
            if self.wrapped:
                _drain(proc.pid, self.run_id, self._since)
            strays = kill_tree(proc.pid, self.run_id, min(self.grace_s, 2.0), self._since) if _alive(proc.pid, self.run_id, self._since) else 0
        if caps is not None:
            caps.close()
        if self.wrapped and returncode > 128:
            returncode = 128 - returncode  # bubblewrap's "128 + signal" back to subprocess's "-signal"
        pump.join(timeout=10.0)
        if pump.is_alive():
            log.warning("run %s: output pipe still open (an untracked process holds it); log may be incomplete", self.run_id)
        ended = time.time()
        return ProcessOutcome(
            returncode=returncode,
            timed_out=self._reason == "timeout",
            cancelled=self._reason == "cancelled",
            started_at=started,
            ended_at=ended,
            output_bytes=pump.total,
            truncated=pump.truncated,
            strays_killed=strays,
        )


def kill_orphans(marker_prefix: str, grace_s: float = 2.0) -> int:
    """Kill processes left by an earlier executor that died with the lab (a SIGKILLed run
    process leaves its experiments running in their own sessions). They are found by the
    prefix of their marker, ``<experiment id>@``; returns how many were found."""
    if not _PROC.is_dir():
        return 0
    needle = f"{RUN_MARKER}={marker_prefix}".encode()
    found = []
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                if any(v.startswith(needle) for v in fh.read().split(b"\0")):
                    found.append(int(entry.name))
        except OSError:
            continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        if sig == signal.SIGTERM:
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and any(is_running(p) for p in found):
                time.sleep(0.05)
    if found:
        log.warning("killed %d process(es) left running by an earlier executor (%s*)", len(found), marker_prefix)
    return len(found)
